"""`tumorbench perf nsd` runs through the perf dispatcher and reports equal NSD values."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmark.perf.nsd import liver_like_pair

ROOT = Path(__file__).resolve().parents[1]


def test_perf_nsd_help_via_dispatcher():
    result = subprocess.run([sys.executable, "-m", "benchmark", "perf", "nsd", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--tolerance" in result.stdout and "examples:" in result.stdout


def test_liver_like_pair_is_liver_sized_and_overlapping():
    spacing = (1.6, 1.6, 3.0)  # the benchmark's pair at half resolution
    ref, pred = liver_like_pair((160, 128, 64), spacing, np.random.default_rng(0))
    litres = ref.sum() * np.prod(spacing) / 1e6
    assert 1.4 < litres < 2.1
    overlap = 2 * (ref & pred).sum() / (ref.sum() + pred.sum())
    assert 0.9 < overlap < 1.0


def test_perf_nsd_small_run_prints_equal_values(capsys):
    import argparse

    from benchmark.perf import nsd

    parser = argparse.ArgumentParser()
    nsd.add_arguments(parser)
    args = parser.parse_args(["--shape", "72", "64", "40", "--spacing", "3", "3", "4", "--repeats", "1",
                              "--skip-monai"])
    assert nsd.run(args) == 0
    rows = {line[:48].strip(): line[48:].split() for line in capsys.readouterr().out.splitlines()[2:]}
    ours, deepmind = rows["tumorbench surface_dice"], rows["DeepMind surface-distance"]
    assert abs(float(ours[0]) - float(deepmind[0])) < 1e-6 and 0.5 < float(ours[0]) < 1.0
