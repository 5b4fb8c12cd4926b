"""Mutation check: does the test suite catch one-line wrong formulas in the samplers, schedulers, PD-DDPM and Gamma-VAE?

    python scripts/mutation_check.py [--tests "tests/test_formulas.py tests/test_samplers.py ..."] [--output FILE]

Each mutation below is applied to a copy of `common/` in a temporary folder (the repository is never touched) and the
tests run against that copy (PYTHONPATH), stopping at the first failure. A mutation is caught when some test fails.
Prints a table and writes JSON (default `runs/mutation_check.json`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fire
from echodiff.errors import ConfigValueError, run_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ("tests/test_formulas.py tests/test_samplers.py tests/test_gamma_schedulers.py tests/test_pddpm_inferer.py "
                 "tests/test_gamma_vae.py tests/test_losses.py")  # fmt: skip

# (name, file under common/echodiff, original text, mutated text)
MUTATIONS = [
    ("DPM++(2M): step ratio r inverted", "samplers/dpm_solver.py", "    r = h_prev / h\n", "    r = h / h_prev\n"),
    ("DPM++(2M): r = 1", "samplers/dpm_solver.py", "    r = h_prev / h\n", "    r = 1.0\n"),
    ("DDIM (eta > 0): Gaussian noise for a Gamma scheduler", "schedulers/sampling.py",
     "lambda: scheduler_noise(scheduler, x_t, t_prev, generator)",
     "lambda: torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)"),
    ("DDIM (eta > 0): noise drawn at t instead of t'", "schedulers/sampling.py",
     "lambda: scheduler_noise(scheduler, x_t, t_prev, generator)", "lambda: scheduler_noise(scheduler, x_t, t, generator)"),
    ("DDIM (eta > 0): sigma without its (1 - ab / ab') factor", "schedulers/ddim.py",
     "sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5",
     "sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)) ** 0.5"),
    ("DDIM (eta > 0): eps coefficient ignores sigma", "schedulers/ddim.py",
     "max(1 - alpha_bar_prev - sigma**2, 0.0)", "max(1 - alpha_bar_prev, 0.0)"),
    ("Gamma DDIM scheduler: noise drawn at t instead of t'", "schedulers/gamma.py",
     "self.sample_noise(sample, max(prev_timestep, 0), generator)", "self.sample_noise(sample, timestep, generator)"),
    ("Gamma DDIM scheduler: Gaussian noise", "schedulers/gamma.py",
     "lambda: self.sample_noise(sample, max(prev_timestep, 0), generator)", "lambda: torch.randn_like(sample)"),
    ("PD-DDPM: Gaussian start noise for a Gamma scheduler", "inferers/pddpm.py",
     "self.scheduler.add_noise(x_pre, scheduler_noise(self.scheduler, x_pre, timesteps, generator), timesteps)",
     "self.scheduler.add_noise(x_pre, torch.randn(x_pre.shape, generator=generator), timesteps)"),
    ("Euler with churn: steps from sigma instead of sigma_hat", "samplers/ode.py",
     "x = x + (sigma_next - sigma_hat) * to_d(x, sigma_hat, denoised)",
     "x = x + (sigma_next - sigma) * to_d(x, sigma_hat, denoised)"),
    ("Churn: S_noise dropped", "samplers/churn.py", "* self.S_noise * noise", "* noise"),
    ("Gamma-VAE: decode maps latent + 1 (not (latent + 1) / 2)", "networks/gamma_vae.py",
     "z = ((latent + 1) / 2).clamp(min=MIN_LATENT)", "z = (latent + 1).clamp(min=MIN_LATENT)"),
    ("Gamma-VAE loss: reconstruction weight 1 instead of 10", "losses/gamma_vae_loss.py",
     "recon_weight: float = 10.0", "recon_weight: float = 1.0"),
]


def _mutated_copy(folder: Path, relative: str, original: str, mutated: str) -> None:
    shutil.copytree(REPO_ROOT / "common", folder / "common", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    path = folder / "common" / "echodiff" / relative
    text = path.read_text()
    if text.count(original) != 1:
        raise ConfigValueError(f"mutation target not found exactly once in common/echodiff/{relative}: {original!r}; "
                               "update scripts/mutation_check.py to the current source")  # fmt: skip
    path.write_text(text.replace(original, mutated))


def main(tests: str = DEFAULT_TESTS, output: str = "runs/mutation_check.json") -> None:
    """Apply each of `MUTATIONS` to a temporary copy of the library and run `tests` against it."""
    rows = []
    for name, relative, original, mutated in MUTATIONS:
        with tempfile.TemporaryDirectory() as folder:
            _mutated_copy(Path(folder), relative, original, mutated)
            env = {**os.environ, "PYTHONPATH": str(Path(folder) / "common"), "OMP_NUM_THREADS": "1"}
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests.split()],
                                    cwd=REPO_ROOT, env=env, capture_output=True, text=True)  # fmt: skip
            failed = [line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
            rows.append({"mutation": name, "file": relative, "caught": result.returncode != 0,
                         "by": failed[0] if failed else None, "seconds": round(time.perf_counter() - start, 1)})
        print(f"{'caught' if rows[-1]['caught'] else 'MISSED':6}  {name}  {rows[-1]['by'] or ''}", flush=True)
    caught = sum(r["caught"] for r in rows)
    print(f"\n{caught} of {len(rows)} mutations caught by: {tests}")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps({"tests": tests, "caught": caught, "total": len(rows), "rows": rows}, indent=2))
    return None


if __name__ == "__main__":
    run_cli(lambda: fire.Fire(main))
