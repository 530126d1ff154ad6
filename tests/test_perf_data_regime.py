"""`tumorbench perf data --regime`: the baseline kept for the per-core rate builds the same batches
as the current data path (so the ratio compares equal work), and the table it writes."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from benchmark.perf.data import make_dataset
from benchmark.perf.data_regime import run_regime, workers_needed
from benchmark.perf.reference_impls import WHOLE_CROP_BASELINES, whole_crop_batches
from models.cache import cached_volumes
from models.config import TrainConfig
from models.data import RunBatches
from synthesis.registry import make_generator


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    out = tmp_path_factory.mktemp("perf_data")
    items = [item for item in make_dataset(out, 4, (150, 140, 90), 0) if item["healthy"]]
    return cached_volumes(items, str(out / "cache"), (1.0, 1.0, 1.0), (48, 48, 48), progress=False)


@pytest.mark.parametrize("regime", ["hu", "cellular"])
def test_the_baseline_data_path_builds_the_same_batches(volumes, regime):
    cfg = TrainConfig(crop_size=(48, 48, 48), spacing=(1.0, 1.0, 1.0), batch_size=2, num_workers=0, seed=3,
                      synth_prob=1.0, rot90_prob=0.5)
    current = make_generator(regime, "liver", size_probs={"small": 1.0})
    new = RunBatches(volumes, cfg, 0, 1, 4, current, True)
    old = whole_crop_batches(volumes, cfg, 0, 1, 4, WHOLE_CROP_BASELINES[regime](current))
    synthesized = 0
    for index in range(4):
        a, b = new[index][2], old[index][2]
        assert np.array_equal(a["image"].numpy(), b["image"].numpy())
        assert np.array_equal(a["label"].numpy(), b["label"].numpy())
        synthesized += a["n_synth"]
        assert a["image"].numpy().flags.c_contiguous
    assert synthesized > 0 and (new[0][2]["label"] == 2).any()


def test_workers_needed_feed_the_gpu():
    assert workers_needed(50.0, 42.0, 2) == 2  # 84 crops/s from 50 per core
    assert workers_needed(84.0, 42.0, 2) == 1
    assert workers_needed(8.0, 42.0, 2) == 11


def test_run_regime_merges_its_entry_into_the_table(volumes, tmp_path, capsys):
    table = tmp_path / "rates.json"
    table.write_text(json.dumps({"other": {"crops_per_core_s": 1.0}}))
    args = argparse.Namespace(out=str(tmp_path / "data"), cases=2, shape=[120, 110, 70], seed=0, crop=32,
                              batch_size=2, regime="hu", gpu_it_s=42.0, batches=2, rounds=1, no_baseline=False,
                              table=str(table), checkpoint=None)
    assert run_regime(args, lambda: make_dataset(tmp_path / "data", 2, (120, 110, 70), 0)) == 0
    rates = json.loads(table.read_text())
    assert rates["other"] == {"crops_per_core_s": 1.0}
    entry = rates["hu"]
    assert entry["crops_per_core_s"] > 0 and entry["baseline_crops_per_core_s"] > 0 and entry["crop"] == 32
    assert {"cpu", "date", "command", "synth_fraction"} <= set(entry)
    assert "workers for 42 it/s" in capsys.readouterr().out


def test_an_unknown_regime_fails_before_any_case_is_written(tmp_path):
    from synthesis.errors import SynthesisInputError

    args = argparse.Namespace(out=str(tmp_path / "data"), crop=32, batch_size=2, regime="nosuch", gpu_it_s=42.0,
                              batches=1, rounds=1, no_baseline=False, table=str(tmp_path / "t.json"), checkpoint=None,
                              seed=0)
    with pytest.raises(SynthesisInputError, match="nosuch"):
        run_regime(args, lambda: pytest.fail("cases written before the regime was checked"))
    assert not (tmp_path / "t.json").exists()
