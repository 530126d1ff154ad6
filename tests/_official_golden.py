"""Where the official DiffTumor golden files live (never copied into the repo) and helpers.

The folder is ``shared/reference/difftumor_official/golden``: from $TUMORBENCH_SHARED, else the
``shared/`` beside the repository (CI), else /work/shared. Tests skip with the reason when absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SUBDIR = Path("reference/difftumor_official/golden")


def golden_dir() -> Path | None:
    candidates = [os.environ.get("TUMORBENCH_SHARED"), REPO.parent / "shared", "/work/shared"]
    for base in candidates:
        if base and (Path(base) / SUBDIR / "cases.pt").is_file():
            return Path(base) / SUBDIR
    return None


def require_golden() -> Path:
    found = golden_dir()
    if found is None:
        pytest.skip("official DiffTumor golden files not found: set TUMORBENCH_SHARED to the folder holding "
                    f"{SUBDIR} (or put shared/ beside the repository)")
    return found


@pytest.fixture(scope="module")
def golden() -> Path:
    """The golden folder (module scope); skips the module's tests when it is absent."""
    return require_golden()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def report(name: str, error: float, reference: torch.Tensor) -> str:
    """One line for the test log: max abs error and its ratio to the reference's range."""
    span = float(reference.max() - reference.min())
    line = f"{name}: max abs error {error:.3g} ({error / span:.2g} of the range {span:.3g})"
    print(line)
    return line
