"""The demo compiles the synthesis kernels once, beside the phantom stage, so that the cells' worker
processes load them from numba's cache instead of each compiling them (docs/performance.md).

Slow (a cold numba compile, ~30 CPU-s): ``pytest -m slow tests/test_demo_kernels.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

# What a demo cell's worker does with the kernels: its generators (default size mix) on 32^3 crops of
# 3 mm organs of several shapes; prints how many kernel signatures this process had to compile.
CELL_DRAWS = """
import json, sys
import numpy as np
from numba.core.dispatcher import Dispatcher
from benchmark.demo import DemoSettings, generator_kwargs
from benchmark.demo_generators import SHIPPED_DIR
from synthesis.registry import make_generator

grid = np.ogrid[:32, :32, :32]
for organ_name in ("liver", "pancreas", "kidney"):
    kwargs = {"hu": {}, "difftumor": generator_kwargs(str(SHIPPED_DIR), DemoSettings())}
    for name in ("hu", "difftumor"):
        generator = make_generator(name, organ_name, **kwargs[name])
        for seed, radii in enumerate([(12, 12, 12), (14, 8, 10), (10, 14, 6)]):
            organ = sum(((g - 16) / r) ** 2 for g, r in zip(grid, radii)) <= 1
            ct = np.where(organ, 90.0 + seed, -50.0).astype(np.float32)[None]
            generator(ct, organ[None], (3.0, 3.0, 3.0), np.random.default_rng(seed))
misses = sum(sum(v.stats.cache_misses.values()) for name, mod in list(sys.modules.items())
             if name.startswith("synthesis") for v in vars(mod).values() if isinstance(v, Dispatcher))
print(json.dumps({"compiled": misses}))
"""


def _python(code: str, cache_dir: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_cells_compile_nothing_after_the_demo_compiled_the_kernels(tmp_path):
    cold = json.loads(_python(CELL_DRAWS, tmp_path / "cold").splitlines()[-1])
    assert cold["compiled"] > 0  # the check can see a compile: a cold cache compiles in the cell
    _python("from benchmark.demo import DemoSettings, compile_synthesis_kernels\n"
            "from benchmark.demo_generators import SHIPPED_DIR\n"
            "s = DemoSettings(); compile_synthesis_kernels(s.spacing_mm, s.crop_size, str(SHIPPED_DIR))",
            tmp_path / "warm")
    warm = json.loads(_python(CELL_DRAWS, tmp_path / "warm").splitlines()[-1])
    assert warm["compiled"] == 0
