import json

import numpy as np
import pytest
import torch
from _interrupt import Killed, kill_at
from models_testdata import HEALTHY_BODY_HU, CountingGenerator, make_items

import models.data
from models.config import TrainConfig, child_rng
from models.data import epoch_batches, finish_batch, plan_batch
from models.trainer import train
from models.volumes import load_volumes

CROP = (24, 24, 24)


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """3 labeled + 3 healthy train cases, 1 labeled val case (32x30x28 at 2 mm)."""
    all_items = make_items(tmp_path_factory.mktemp("cases"), n_labeled=4, n_healthy=3, seed=3, shape=(32, 30, 28))
    return all_items[:3] + all_items[4:], [all_items[3]]


def _config(**overrides):
    base = dict(backbone="unet", size="tiny", crop_size=CROP, spacing=(2.0, 2.0, 2.0), epochs=3,
                iters_per_epoch=2, val_every=2, warmup_epochs=1, seed=7, lr=1e-3)
    return TrainConfig(**{**base, **overrides})


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_same_seed_same_losses_different_seed_different(items, tmp_path):
    train_items, val_items = items
    runs = [train(_config(epochs=e, seed=s, val_every=2), train_items, val_items, tmp_path / f"r{i}",
                  generator=CountingGenerator(), progress=False) for i, (e, s) in enumerate([(2, 7), (2, 7), (1, 8)])]
    losses = [[h["train_loss"] for h in r.history] for r in runs]
    assert losses[0] == losses[1]
    assert losses[0][0] != losses[2][0]
    for key, value in _weights(runs[0].last_ckpt).items():
        assert torch.equal(value, _weights(runs[1].last_ckpt)[key])


def test_resume_after_kill_matches_uninterrupted_run(items, tmp_path):
    train_items, val_items = items
    full = train(_config(), train_items, val_items, tmp_path / "full", generator=CountingGenerator(),
                 progress=False)
    with pytest.raises(Killed):
        train(_config(), train_items, val_items, tmp_path / "killed", generator=CountingGenerator(),
              log_metrics=kill_at(2), progress=False)
    # metrics are logged before last.pt: killed while logging epoch 2, the checkpoint is epoch 1's
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["epoch"] == 1
    logged = []
    resumed = train(_config(num_workers=0), train_items, val_items, tmp_path / "killed",
                    generator=CountingGenerator(), log_metrics=lambda m, e: logged.append(e), progress=False)
    assert resumed.resumed_from_epoch == 1 and full.resumed_from_epoch == 0
    assert logged == [2, 3]  # epoch 2 is replayed (its repeat is dropped by the MLflow logger)
    assert resumed.history == full.history
    full_w, resumed_w = _weights(full.last_ckpt), _weights(resumed.last_ckpt)
    assert all(torch.equal(full_w[k], resumed_w[k]) for k in full_w)


def test_report_raising_prunes_after_saving_last(items, tmp_path):
    train_items, val_items = items
    seen = []

    def report(epoch, tumor_dsc):
        seen.append((epoch, tumor_dsc))
        raise Killed("pruned")

    with pytest.raises(Killed):
        train(_config(epochs=4), train_items, val_items, tmp_path, report=report, progress=False)
    assert [e for e, _ in seen] == [2] and 0.0 <= seen[0][1] <= 1.0
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2


def test_checkpoints_load_weights_only_and_keep_state(items, tmp_path):
    train_items, val_items = items
    result = train(_config(epochs=2, val_every=1), train_items, val_items, tmp_path, progress=False)
    for path in (result.best_ckpt, result.last_ckpt):
        state = torch.load(path, weights_only=True)
        assert TrainConfig.from_dict(state["config"]) == _config(epochs=2, val_every=1)
        assert state["optimizer"]["state"] and "cpu" in state["rng"]
    last = torch.load(result.last_ckpt, weights_only=True)
    assert last["epoch"] == 2 and len(last["history"]) == 2
    best = max(result.history, key=lambda h: (h["val_tumor_dsc"], h["val_organ_dsc"]))
    assert torch.load(result.best_ckpt, weights_only=True)["best"]["epoch"] == best["epoch"]
    assert json.loads((tmp_path / "config.json").read_text()) == _config(epochs=2, val_every=1).to_dict()
    # lr: warmup epoch at base/2, then cosine from the base lr
    assert [h["lr"] for h in result.history] == pytest.approx([5e-4, 1e-3])


def test_resume_with_other_config_is_refused(items, tmp_path):
    train_items, val_items = items
    train(_config(epochs=1), train_items, val_items, tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"different TrainConfig \(fields \['lr'\]\)"):
        train(_config(epochs=1, lr=5e-4), train_items, val_items, tmp_path, progress=False)


def test_generator_sees_only_healthy_crops_with_synth_prob(items, tmp_path):
    train_items, _ = items
    volumes = load_volumes(train_items, CROP, progress=False)
    cfg = _config(synth_prob=0.5, batch_size=4)
    generator = CountingGenerator()
    n_healthy_crops = n_synth = 0
    for b in range(60):
        indices = child_rng(0, b).integers(0, len(volumes), 4)
        plan = plan_batch(volumes, indices, cfg, True, child_rng(1, b))
        n_healthy_crops += sum(volumes[i].healthy for i in indices)
        assert not any(plan.synth[j] and not volumes[i].healthy for j, i in enumerate(indices))
        batch = finish_batch(plan, cfg, generator, child_rng(2, b))
        n_synth += batch["n_synth"]
        for j in np.flatnonzero(plan.synth):
            assert (batch["label"][j] == 2).any()  # synthetic tumor label is in the batch
        for j in np.flatnonzero(~plan.synth):
            assert torch.equal(batch["label"][j, 0], torch.from_numpy(plan.label[j].astype(np.int64)))
    assert all(markers == {HEALTHY_BODY_HU} for markers in generator.crop_markers)
    assert sum(generator.calls) == n_synth and len(generator.calls) <= 60  # one call per batch
    assert abs(n_synth / n_healthy_crops - 0.5) < 0.1  # ~120 healthy crops, binomial sd ~0.045


def test_no_generator_means_no_synthetic_tumors(items):
    train_items, _ = items
    volumes = load_volumes(train_items, CROP, progress=False)
    plan = plan_batch(volumes, [3, 4, 5, 3], _config(synth_prob=1.0), False, child_rng(0))
    assert not plan.synth.any()


def test_window_and_crop_follow_config(items):
    train_items, _ = items
    volumes = load_volumes(train_items, CROP, progress=False)
    cfg = _config(rot90_prob=0.0, shift_prob=0.0, batch_size=3)
    plan = plan_batch(volumes, [0, 1, 2], cfg, False, child_rng(5))
    batch = finish_batch(plan, cfg, None, child_rng(6))
    assert batch["image"].shape == (3, 1, *CROP) and batch["label"].shape == (3, 1, *CROP)
    expected = np.clip((plan.ct_hu + 175.0) / 425.0, 0, 1)
    assert np.allclose(batch["image"][:, 0].numpy(), expected)
    assert float(batch["image"].min()) == 0.0  # air (-1000 HU) maps to 0


@pytest.mark.parametrize("crop", [CROP, (24, 20, 16)])
def test_monai_augmentations_equal_the_numpy_formulas(items, monkeypatch, crop):
    """MONAI Rotate90 / ShiftIntensity apply the drawn k and offset bit for bit as the former
    ``np.rot90(crop, k, axes=(0, 1))`` and ``window(crop) + offset`` (k = 1, 3 only for square X, Y)."""
    volumes = load_volumes(items[0], crop, progress=False)
    cfg = _config(crop_size=crop, rot90_prob=0.75, shift_prob=0.5, batch_size=3)
    starts, ks = [], []
    select, draw_k = models.data._select_start, models.data._rot90_k
    monkeypatch.setattr(models.data, "_select_start", lambda *a: starts.append(select(*a)) or starts[-1])
    monkeypatch.setattr(models.data, "_rot90_k", lambda *a: ks.append(draw_k(*a)) or ks[-1])
    low, high = cfg.window
    seen_k, shifted = set(), []
    for seed in range(8):
        del starts[:], ks[:]
        indices = child_rng(seed, 1).integers(0, len(volumes), 3)
        plan = plan_batch(volumes, indices, cfg, False, child_rng(seed))
        image = finish_batch(plan, cfg, None, child_rng(seed, 2))["image"][:, 0].numpy()
        for j, i in enumerate(indices):
            ct = np.rot90(volumes[i].ct_crop(starts[j], crop), ks[j], axes=(0, 1))
            label = np.rot90(volumes[i].label_crop(starts[j], crop), ks[j], axes=(0, 1))
            expected = np.clip((ct - low) / (high - low), 0.0, 1.0) + plan.shift[j]
            assert plan.ct_hu[j].tobytes() == np.ascontiguousarray(ct).tobytes()
            assert plan.label[j].tobytes() == np.ascontiguousarray(label).tobytes()
            assert image[j].tobytes() == np.ascontiguousarray(expected, dtype=np.float32).tobytes()
        seen_k.update(ks)
        shifted.extend(plan.shift != 0)
    assert seen_k == ({0, 1, 2, 3} if crop[0] == crop[1] else {0, 2})
    assert any(shifted) and not all(shifted)


@pytest.mark.parametrize("name", ["unet", "nnunet", "swin_unetr"])
def test_each_backbone_trains_two_iterations(items, tmp_path, name):
    train_items, val_items = items
    crop = (48, 32, 32) if name == "swin_unetr" else CROP
    cfg = _config(backbone=name, crop_size=crop, epochs=1, iters_per_epoch=2, batch_size=1,
                  deep_supervision=name == "nnunet")
    result = train(cfg, train_items, val_items, tmp_path, generator=CountingGenerator(), progress=False)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


def test_worker_loading_gives_the_same_batches(items):
    train_items, _ = items
    volumes = load_volumes(train_items, CROP, progress=False)
    generator = CountingGenerator()
    serial = list(epoch_batches(volumes, _config(num_workers=0, synth_prob=1.0), 4, 3, generator))
    parallel = list(epoch_batches(volumes, _config(num_workers=2, synth_prob=1.0), 4, 3, generator))
    assert sum(b["n_synth"] for b in serial) > 0
    assert generator.warm_ups == 1  # workers synthesize: warmed in this process before they fork
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_hu_generator_plugs_into_the_pipeline(items):
    pytest.importorskip("synthesis.hu")
    from synthesis.registry import make_generator

    train_items, _ = items
    volumes = load_volumes(train_items[3:], CROP, progress=False)  # healthy cases
    cfg = _config(synth_prob=1.0, batch_size=3, shift_prob=0.0)
    plan = plan_batch(volumes, [0, 1, 2], cfg, True, child_rng(4))
    batch = finish_batch(plan, cfg, make_generator("hu", "liver"), child_rng(5))
    tumor = batch["label"][:, 0].numpy() == 2
    assert plan.synth.all() and tumor.any(axis=(1, 2, 3)).all()
    assert (plan.label[tumor] == 1).all()  # liver tumors lie inside the organ
    low, high = cfg.window
    before = np.clip((plan.ct_hu[tumor] - low) / (high - low), 0, 1)
    assert batch["image"][:, 0].numpy()[tumor].mean() < before.mean()  # hypo-attenuating


def test_best_is_written_after_the_metrics_and_last(items, tmp_path, monkeypatch):
    import os

    train_items, val_items = items
    events = []
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".pt"):
            events.append(os.path.basename(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    train(_config(epochs=2, val_every=2), train_items, val_items, tmp_path, progress=False,
          log_metrics=lambda m, e: events.append(f"log {e}"))
    # epoch 2 validates and is the best: metrics, then last.pt (its predecessor kept), then best.pt
    assert events == ["log 1", "last.pt", "log 2", "last.prev.pt", "last.pt", "best.pt"]
    assert torch.load(tmp_path / "last.prev.pt", weights_only=True)["epoch"] == 1


def test_truncated_last_falls_back_to_its_predecessor(items, tmp_path):
    train_items, val_items = items
    full = train(_config(), train_items, val_items, tmp_path / "full", progress=False)
    with pytest.raises(Killed):
        train(_config(), train_items, val_items, tmp_path / "crashed", log_metrics=kill_at(3), progress=False)
    last = tmp_path / "crashed" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a node crash mid-write
    with pytest.warns(RuntimeWarning, match=r"last\.pt: cannot read checkpoint.*predecessor .*last\.prev\.pt \(epoch 1\)"):
        resumed = train(_config(), train_items, val_items, tmp_path / "crashed", progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.history == full.history
    # the broken file is set aside, so the predecessor kept now is a good one (epoch 2), not it
    assert torch.load(tmp_path / "crashed" / "last.prev.pt", weights_only=True)["epoch"] == 2
    assert (tmp_path / "crashed" / "last.corrupt.pt").is_file()
    full_w, resumed_w = _weights(full.last_ckpt), _weights(resumed.last_ckpt)
    assert all(torch.equal(full_w[k], resumed_w[k]) for k in full_w)


def test_crash_before_best_is_written_is_repaired_from_last(items, tmp_path, monkeypatch):
    import models.trainer as trainer

    train_items, val_items = items
    real_copy = trainer.copy_atomic

    def crash_on_best(source, target):
        if str(target).endswith("best.pt"):
            raise Killed("node crash before best.pt")
        return real_copy(source, target)

    monkeypatch.setattr(trainer, "copy_atomic", crash_on_best)
    with pytest.raises(Killed):
        train(_config(epochs=2, val_every=2), train_items, val_items, tmp_path, progress=False)
    assert not (tmp_path / "best.pt").exists()
    monkeypatch.undo()
    with pytest.warns(RuntimeWarning, match="restored from .*last.pt"):
        result = train(_config(epochs=2, val_every=2), train_items, val_items, tmp_path, progress=False)
    best = torch.load(result.best_ckpt, weights_only=True)
    assert best["epoch"] == best["best"]["epoch"] == 2
    assert all(torch.equal(v, _weights(result.last_ckpt)[k]) for k, v in best["model"].items())


def test_unreadable_last_and_predecessor_give_one_error_naming_both(tmp_path):
    from models.checkpoint import load_latest

    assert load_latest(tmp_path / "last.pt") is None  # nothing to resume
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 torn")
    (tmp_path / "last.prev.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"last\.pt: cannot read checkpoint.*last\.prev\.pt: cannot read checkpoint"
                                         r".*delete them to start over"):
        load_latest(tmp_path / "last.pt")


def test_before_write_stops_training_before_the_next_checkpoint(items, tmp_path):
    """The runner's lease check: once it raises (the cell was taken over while epoch 2 was being
    logged), neither last.pt nor best.pt of epoch 2 is written."""
    train_items, val_items = items
    lost = []

    def before_write():
        if lost:
            raise Killed("lease lost")

    with pytest.raises(Killed):
        train(_config(epochs=2, val_every=1), train_items, val_items, tmp_path, progress=False,
              before_write=before_write, log_metrics=lambda m, e: lost.append(e) if e == 2 else None)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 1
