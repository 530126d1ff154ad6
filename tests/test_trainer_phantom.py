"""Slow end-to-end check: a tiny UNet trained a few CPU minutes on the liver phantom learns the
organ (val organ DSC > 0.8) and finds some phantom tumors. Run with ``pytest -m slow``."""
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_tiny_unet_learns_liver_phantom(tmp_path):
    data = pytest.importorskip("benchmark.data")
    if not hasattr(data, "generate_phantom_dataset"):
        pytest.skip("benchmark.data.generate_phantom_dataset not available yet")
    import nibabel as nib

    from models.config import TrainConfig
    from models.overlap import dice
    from models.inference import predict_items
    from models.trainer import train

    data.generate_phantom_dataset(tmp_path / "liver", organ="liver", n_cases=16, seed=0, progress=False)
    dataset = data.Dataset.open(tmp_path / "liver")
    train_ids, val_ids = dataset.fold(0)
    labeled = set(dataset.cases.index[dataset.cases["role"] == "labeled"])
    cfg = TrainConfig(backbone="unet", size="tiny", crop_size=(48, 48, 48), spacing=tuple(dataset.spacing),
                      epochs=40, iters_per_epoch=8, val_every=10, warmup_epochs=2, lr=2e-3, seed=0)
    train_items = dataset.items([c for c in train_ids if c in labeled])  # real regime
    result = train(cfg, train_items, dataset.items(val_ids), tmp_path / "run", progress=False)
    paths = predict_items(result.best_ckpt, dataset.items(val_ids), tmp_path / "pred", progress=False)
    organ, detected, n_tumors = [], 0, 0
    for case_id, path in zip(val_ids, paths):
        pred = np.asarray(nib.load(str(path)).dataobj)
        truth = np.asarray(nib.load(str(dataset.labels_path(case_id))).dataobj)
        organ.append(dice(pred >= 1, truth >= 1))
        if (truth == 2).any():
            n_tumors += 1
            detected += bool(((pred == 2) & (truth == 2)).any())
    print(f"phantom liver fold 0: organ DSC {np.mean(organ):.3f}, tumors detected {detected}/{n_tumors}, "
          f"best {result.history and max(h.get('val_tumor_dsc', 0) for h in result.history):.3f}")
    assert np.mean(organ) > 0.8
    assert n_tumors == 0 or detected >= 1


def test_tiny_unet_learns_fixture_phantom(tmp_path):
    """Same check on the small models/ fixture cases (always available)."""
    import nibabel as nib
    from models_testdata import make_items

    from models.config import TrainConfig
    from models.overlap import dice
    from models.inference import predict_items
    from models.trainer import train

    items = make_items(tmp_path / "cases", n_labeled=8, n_healthy=0, seed=11, shape=(48, 44, 40))
    cfg = TrainConfig(backbone="unet", size="tiny", crop_size=(32, 32, 32), spacing=(2.0, 2.0, 2.0), epochs=30,
                      iters_per_epoch=4, val_every=10, warmup_epochs=2, lr=3e-3, seed=0)
    result = train(cfg, items[:6], items[6:], tmp_path / "run", progress=False)
    paths = predict_items(result.best_ckpt, items[6:], tmp_path / "pred", progress=False)
    organ, found = [], 0
    for item, path in zip(items[6:], paths):
        pred = np.asarray(nib.load(str(path)).dataobj)
        truth = np.asarray(nib.load(item["label"]).dataobj)
        organ.append(dice(pred >= 1, truth >= 1))
        found += bool(((pred == 2) & (truth == 2)).any())
    print(f"fixture phantom: organ DSC {np.mean(organ):.3f}, tumors detected {found}/2, "
          f"val history {[(h['epoch'], round(h.get('val_tumor_dsc', -1), 3)) for h in result.history if 'val_tumor_dsc' in h]}")
    assert np.mean(organ) > 0.8
    assert found >= 1
