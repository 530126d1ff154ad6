import nibabel as nib
import numpy as np
import pytest
import torch
from models_testdata import affine_for, make_items

from models.config import TrainConfig
from models.inference import keep_main_components, load_model, postprocess, predict_items
from models.trainer import train


def _ball(shape, center, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, center)) <= radius**2


def test_postprocess_removes_tumor_outside_organ_and_keeps_inside():
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[_ball(labels.shape, (14, 20, 20), 10)] = 1
    labels[_ball(labels.shape, (14, 20, 20), 3)] = 2  # inside the organ
    labels[_ball(labels.shape, (34, 34, 34), 2)] = 2  # blob far outside
    out = postprocess(labels, spacing=(2.0, 2.0, 2.0), margin_mm=4.0)
    assert out[14, 20, 20] == 2 and out[34, 34, 34] == 0
    assert np.array_equal(out == 2, _ball(labels.shape, (14, 20, 20), 3))
    assert np.array_equal(out == 1, labels == 1)


def test_postprocess_keeps_tumor_calls_inside_the_given_target_organ():
    """Cross-organ: a liver model's prediction (big 'organ' elsewhere) with a correct tumor call
    inside the target (pancreas) mask keeps that call; calls outside the mask go, whatever the
    margin; the organ label stays the model's own (main component)."""
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[_ball(labels.shape, (28, 28, 28), 9)] = 1  # predicted "liver", far from the target
    labels[_ball(labels.shape, (8, 8, 8), 2)] = 2  # tumor call inside the target organ
    labels[_ball(labels.shape, (28, 28, 28), 3)] = 2  # tumor call in the predicted organ, outside target
    target = _ball(labels.shape, (8, 8, 8), 5)
    out = postprocess(labels, spacing=(1.0, 1.0, 1.0), organ_mask=target)
    assert np.array_equal(out == 2, _ball(labels.shape, (8, 8, 8), 2))
    assert np.array_equal(out == 1, labels == 1)
    without = postprocess(labels, spacing=(1.0, 1.0, 1.0))  # predicted organ: the call inside the target is lost
    assert without[8, 8, 8] == 0 and without[28, 28, 28] == 2
    wide = postprocess(labels, spacing=(1.0, 1.0, 1.0), organ_mask=target, margin_mm=3.0)
    assert wide[28, 28, 28] == 0 and (wide == 2).sum() == (out == 2).sum()
    with pytest.raises(ValueError, match="organ mask has shape"):
        postprocess(labels, (1.0, 1.0, 1.0), organ_mask=target[:-1])


def test_keep_main_components_keeps_two_kidneys_drops_island():
    mask = _ball((40, 40, 40), (10, 20, 20), 6) | _ball((40, 40, 40), (30, 20, 20), 5) | _ball((40, 40, 40), (20, 5, 5), 1)
    kept = keep_main_components(mask)
    assert kept[10, 20, 20] and kept[30, 20, 20] and not kept[20, 5, 5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    items = make_items(root / "cases", n_labeled=2, n_healthy=1, seed=5, shape=(30, 28, 26))
    cfg = TrainConfig(crop_size=(24, 24, 24), spacing=(2.0, 2.0, 2.0), epochs=1, iters_per_epoch=1, val_every=1,
                      warmup_epochs=0, seed=1)
    result = train(cfg, items[:2], items[2:], root / "run", progress=False)
    return result, items


def test_predict_items_writes_case_space_uint8_labels(trained, tmp_path):
    result, items = trained
    odd_affine = affine_for(spacing=(2.0, 2.0, 2.0), origin=(11.0, -7.0, 5.5))
    ct = np.asarray(nib.load(items[0]["image"]).dataobj)[:27, :25, :23]  # odd grid, other origin
    nib.save(nib.Nifti1Image(ct, odd_affine), str(tmp_path / "odd.nii.gz"))
    cases = [items[0], {"case_id": "odd", "image": str(tmp_path / "odd.nii.gz")}]
    paths = predict_items(result.best_ckpt, cases, tmp_path / "pred", overlap=0.5, progress=False)
    assert [p.name for p in paths] == ["lab0.nii.gz", "odd.nii.gz"]
    for case, path in zip(cases, paths):
        src, pred = nib.load(case["image"]), nib.load(str(path))
        assert pred.shape == src.shape and np.allclose(pred.affine, src.affine)
        data = np.asarray(pred.dataobj)
        assert data.dtype == np.uint8 and set(np.unique(data)) <= {0, 1, 2}
    assert not list((tmp_path / "pred").glob(".*tmp*"))  # no temp files left


def test_predict_items_with_organ_masks_and_bad_input(trained, tmp_path):
    result, items = trained
    organ_path = items[0]["label"]
    paths = predict_items(result.last_ckpt, items[:1], tmp_path, organ_masks={"lab0": organ_path}, progress=False)
    pred = np.asarray(nib.load(str(paths[0])).dataobj)
    organ = np.asarray(nib.load(organ_path).dataobj) > 0
    assert not (pred[~organ] == 2).any()  # tumor calls only inside the given (target) organ mask
    with pytest.raises(ValueError, match="CT of case ghost not found"):
        predict_items(result.last_ckpt, [{"case_id": "ghost", "image": str(tmp_path / "no.nii.gz")}],
                      tmp_path, progress=False)


def test_load_model_rebuilds_network_and_config(trained):
    result, _ = trained
    model, config = load_model(result.best_ckpt, "cpu")
    assert config.crop_size == (24, 24, 24) and not model.training
    state = torch.load(result.best_ckpt, weights_only=True)["model"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with pytest.raises(ValueError, match="checkpoint not found"):
        load_model(result.best_ckpt.with_name("nope.pt"), "cpu")


def test_outputs_follow_the_umask(trained, tmp_path):
    import os

    result, items = trained
    from models.checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        path = predict_items(result.best_ckpt, items[:1], tmp_path, organ_postprocess=False, progress=False)[0]
        ckpt = save_checkpoint(tmp_path / "x.pt", {"model": {}, "config": {}})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    assert ckpt.stat().st_mode & 0o777 == 0o644
