"""echodiff: shared library behind the echodiff MONAI bundles for 2D echocardiography.

Subpackages load on first attribute access, so bundle configs need only `"$import echodiff"` and can then name
`echodiff.data.views.view_classification_items` and the like. Importing echodiff installs
`echodiff.errors.install_excepthook`: an uncaught bad-input error ends the output with its one-line message; and
`echodiff.cpu.default_cpu_threads`: torch computes on half the CPU cores unless OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.7.0"

_SUBPACKAGES = (
    "bundle", "cpu", "data", "devices", "engines", "errors", "fingerprints", "generation", "inferers", "io", "losses",
    "metrics", "networks", "samplers", "schedulers", "study", "distillation", "benchmarks",
)


from echodiff.cpu import default_cpu_threads  # noqa: E402
from echodiff.errors import install_excepthook  # noqa: E402

install_excepthook()  # a bad input run through `python -m monai.bundle run` ends with our one-line message
default_cpu_threads()  # no OpenMP oversubscription next to data-loading workers or a second job


def __getattr__(name: str) -> ModuleType:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBPACKAGES])
