"""Cell identity: round trip, hash stable across processes and sensitive to every field."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cell import Cell

CELL = Cell(organ="liver", backbone="unet", fold=0, regime="hu", preset="tiny", seed=0,
            dataset_fingerprint="abc123", hyperparameters={"lr": 1e-3, "crop_size": [48, 48, 32], "epochs": 2},
            generator={"name": "hu", "size_probs": {"tiny": 0.5, "small": 0.5}})


def test_round_trip_and_order_independence():
    again = Cell.from_dict(json.loads(json.dumps(CELL.to_dict())))
    assert again == CELL and again.hash == CELL.hash and hash(again) == hash(CELL)
    reordered = dataclasses.replace(CELL, hyperparameters={"epochs": 2, "crop_size": (48, 48, 32), "lr": 1e-3})
    assert reordered.hash == CELL.hash
    assert CELL.to_dict()["generator"]["size_probs"] == {"small": 0.5, "tiny": 0.5}
    assert CELL.relative_dir() == Path("liver", "unet", "hu", f"fold_0__{CELL.hash}")
    assert CELL.run_name == "liver·unet·hu·f0"
    assert CELL.params()["crop_size"] == "[48, 48, 32]" and CELL.params()["generator.name"] == "hu"


def test_hash_is_the_same_in_another_process():
    """Same dict -> same hash in a fresh interpreter (no PYTHONHASHSEED dependence)."""
    code = ("import json,sys; from benchmark.cell import Cell; "
            "print(Cell.from_dict(json.loads(sys.argv[1])).hash)")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, json.dumps(CELL.to_dict())], cwd=repo,
                         capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == CELL.hash


@pytest.mark.parametrize("change", [
    {"organ": "kidney"}, {"backbone": "nnunet"}, {"fold": 1}, {"regime": "difftumor"}, {"preset": "paper"},
    {"seed": 1}, {"dataset_fingerprint": "abc124"},
    {"hyperparameters": {"lr": 2e-3, "crop_size": [48, 48, 32], "epochs": 2}},
    {"hyperparameters": {"lr": 1e-3, "crop_size": [48, 48, 48], "epochs": 2}},
    {"generator": {"name": "hu", "size_probs": {"tiny": 0.4, "small": 0.6}}},
])
def test_hash_changes_with_every_field(change):
    assert dataclasses.replace(CELL, **change).hash != CELL.hash


def test_overrides_and_bad_dict():
    tuned = CELL.with_overrides({"lr": 0.01}, {"size_probs": {"tiny": 1.0}})
    assert tuned.hp()["lr"] == 0.01 and tuned.hp()["epochs"] == 2 and tuned.hash != CELL.hash
    real = dataclasses.replace(CELL, regime="real", generator={})
    assert real.with_overrides(None, {"size_probs": 1}).generator == ()  # real has no generator
    from benchmark.errors import InputError

    with pytest.raises(InputError, match="unknown fields"):
        Cell.from_dict({**CELL.to_dict(), "colour": "red"})
