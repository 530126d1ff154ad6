"""The preprocessed int16 case cache (models.cache) and the one-loader-per-run batch stream."""
import os
import pickle

import numpy as np
import pytest
import torch
from _interrupt import Killed, kill_at
from models_testdata import CountingGenerator, make_items

from models.cache import body_box, cached_volumes, case_key
from models.config import TrainConfig, child_rng
from models.data import epoch_batches, plan_batch, run_batches
from models.trainer import train
from models.volumes import load_volumes

CROP = (24, 24, 24)
SPACING = (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    # one axis (20) smaller than the crop: exercises the virtual padding
    return make_items(tmp_path_factory.mktemp("cases"), n_labeled=2, n_healthy=2, seed=4, shape=(34, 30, 20))


def _config(**overrides):
    base = dict(backbone="unet", size="tiny", crop_size=CROP, spacing=SPACING, epochs=2, iters_per_epoch=2,
                val_every=1, warmup_epochs=0, seed=3, lr=1e-3)
    return TrainConfig(**{**base, **overrides})


def test_cached_crops_equal_rounded_in_memory_crops(items, tmp_path):
    ram = load_volumes(items, CROP, progress=False)
    disk = cached_volumes(items, tmp_path, SPACING, CROP, progress=False)
    assert isinstance(disk[0].ct_hu, np.memmap) and disk[0].ct_hu.dtype == np.int16
    for a, b in zip(ram, disk):
        assert a.shape == b.shape  # the body crop is undone by the virtual padding / air fill
        rng = np.random.default_rng(0)
        for _ in range(20):
            start = tuple(int(rng.integers(0, s - k + 1)) for s, k in zip(a.shape, CROP))
            np.testing.assert_array_equal(b.label_crop(start, CROP), a.label_crop(start, CROP))
            expect = np.rint(a.ct_crop(start, CROP))
            inside = b.ct_crop(start, CROP)
            # outside the body box the cache reads air (-1024) where the file had -1000: both are air
            body = expect > -500
            np.testing.assert_array_equal(inside[body], expect[body])
            assert (inside[~body] <= -500).all()
    plan_ram = plan_batch(ram, [0, 1, 2, 3], _config(batch_size=4), False, child_rng(1))
    plan_disk = plan_batch(disk, [0, 1, 2, 3], _config(batch_size=4), False, child_rng(1))
    np.testing.assert_array_equal(plan_ram.label, plan_disk.label)


def test_entries_written_once_and_refreshed_when_a_file_changes(items, tmp_path):
    cached_volumes(items, tmp_path, SPACING, CROP, progress=False)
    entries = sorted(p for p in tmp_path.iterdir())
    assert len(entries) == len(items)
    stamps = {p: (p / "ct.npy").stat().st_mtime_ns for p in entries}
    cached_volumes(items[:2], tmp_path, SPACING, CROP, progress=False)  # another fold, same cases
    assert {p: (p / "ct.npy").stat().st_mtime_ns for p in entries} == stamps
    assert case_key(items[0], (1.0, 1.0, 1.0)) != case_key(items[0], SPACING)  # spacing is in the key
    os.utime(items[0]["image"], ns=(1, 1))
    cached_volumes(items[:1], tmp_path, SPACING, CROP, progress=False)
    assert len(list(tmp_path.iterdir())) == len(items) + 1


def test_cached_volume_pickles_as_its_path(items, tmp_path):
    vol = cached_volumes(items[:1], tmp_path, SPACING, CROP, progress=False)[0]
    blob = pickle.dumps(vol)
    assert len(blob) < 2000 < vol.ct_hu.nbytes
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.ct_hu, vol.ct_hu)
    assert back.min_shape == vol.min_shape and back.healthy == vol.healthy


def test_body_box_keeps_body_and_labels():
    ct = np.full((10, 10, 10), -1000.0)
    label = np.zeros((10, 10, 10), np.uint8)
    ct[2:5, 3:7, 4:6] = 40.0
    label[8, 8, 8] = 1
    assert body_box(ct, label) == (slice(2, 9), slice(3, 9), slice(4, 9))


def test_one_stream_equals_per_epoch_loaders(items, tmp_path):
    volumes = cached_volumes(items, tmp_path, SPACING, CROP, progress=False)
    cfg = _config(num_workers=2, synth_prob=1.0)
    stream = list(run_batches(volumes, cfg, 1, 4, 3, CountingGenerator()))
    per_epoch = [b for e in range(1, 4) for b in epoch_batches(volumes, _config(synth_prob=1.0), e, 3,
                                                                 CountingGenerator())]
    assert len(stream) == len(per_epoch) == 9
    for a, b in zip(stream, per_epoch):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_trainer_on_the_cache_resumes_like_uninterrupted(items, tmp_path):
    cache = tmp_path / "cache"
    full = train(_config(epochs=3), items[:3], items[3:], tmp_path / "full", cache_dir=cache, progress=False)
    with pytest.raises(Killed):
        train(_config(epochs=3), items[:3], items[3:], tmp_path / "k", cache_dir=cache, log_metrics=kill_at(2),
              progress=False)
    resumed = train(_config(epochs=3, num_workers=2), items[:3], items[3:], tmp_path / "k", cache_dir=cache,
                    progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.history == full.history


def test_perf_data_paths_draw_the_same_number_of_crops(tmp_path):
    from benchmark.perf.data import make_dataset, measure_path

    items = make_dataset(tmp_path / "ds", 2, (40, 36, 24), seed=0)
    assert [i["healthy"] for i in items] == [False, True]
    cfg = _config(crop_size=(16, 16, 16), spacing=(1.0, 1.0, 1.0), batch_size=2).to_dict()
    rows = [measure_path(p, items, str(tmp_path / "cache"), cfg, 2, 3) for p in ("old", "new")]
    assert [r["crops"] for r in rows] == [12, 12]
    assert all(r["rss"] > 0 and r["crops_per_s"] > 0 for r in rows)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_perf_crops_runs_on_a_memory_mapped_case_of_the_requested_organ_volume(tmp_path, capsys):
    import argparse

    from benchmark.perf import crops

    parser = argparse.ArgumentParser()
    crops.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--shape", "96", "96", "64", "--organ-ml", "30",
                              "--crops", "20", "--crop", "32"])
    assert crops.run(args) == 0
    ct, label = crops.make_case(tmp_path, (96, 96, 64), 30.0)
    assert isinstance(label, np.memmap) and ct.dtype == np.int16 and ct.shape == label.shape == (96, 96, 64)
    assert abs(int(label.sum()) / 30_000 - 1) < 0.05  # 30 ml at 1 mm
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["ours", "MONAI"]
