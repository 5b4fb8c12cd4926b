"""Markdown of the study's and the comparison's reports: numbers, intervals, verdicts and tables."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["fmt_value", "interval_text", "markdown_table", "verdict_text"]


def fmt_value(value: object, digits: int = 1) -> str:
    """A float with `digits` decimals, None as "-", anything else as its str."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def markdown_table(rows: list[dict], keys: list[str], digits: int = 1) -> str:
    """A markdown table of `rows` with the columns `keys` (missing values "-")."""
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt_value(row.get(k), digits) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def interval_text(ci95: list | None, digits: int) -> str:
    """A 95 % interval as "[low, high]" ("-" when there is none)."""
    return "-" if ci95 is None else f"[{fmt_value(ci95[0], digits)}, {fmt_value(ci95[1], digits)}]"


def verdict_text(gap: Mapping) -> str:
    """A paired difference in words: a tie when its interval contains 0, else which side is higher."""
    return "tie" if gap["tie"] else ("synthetic higher" if gap["difference"] > 0 else "synthetic lower")
