"""RandTumord: synthesis on healthy crops only, with probability p, for numpy and MetaTensor."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from synthesis.hu import HuGenerator, HuRanges
from synthesis.transforms import RandTumord


def crop(organ_value=1, tumor=False, size=40):
    grid = np.ogrid[:size, :size, :size]
    organ = sum(((g - size / 2) / (size * 0.4)) ** 2 for g in grid) <= 1
    label = organ.astype(np.float32) * organ_value
    if tumor:
        label[18:22, 18:22, 18:22] = 2
    image = np.where(organ, 110.0, -30.0).astype(np.float32)
    return {"image": image[None], "label": label[None]}


def make(prob, seed=0):
    generator = HuGenerator("liver", size_probs={"small": 1.0}, ranges=HuRanges(geometry="difftumor"))
    transform = RandTumord(keys=("image", "label"), generator=generator, prob=prob, spacing=(2.0, 2.0, 2.0))
    transform.set_random_state(seed)
    return transform


def test_healthy_crop_gets_tumor_label_2_inside_organ():
    data = crop()
    out = make(1.0)(data)
    tumor = out["label"][0] == 2
    assert tumor.any() and (data["label"][0][tumor] == 1).all()
    assert (out["image"] != data["image"]).any() and (out["image"] <= data["image"] + 1e-4).all()
    assert out["label"].dtype == data["label"].dtype and out["image"].shape == data["image"].shape
    assert (data["label"] <= 1).all()  # input dict untouched


def test_crop_with_real_tumor_is_never_changed():
    data = crop(tumor=True)
    out = make(1.0)(data)
    np.testing.assert_array_equal(out["image"], data["image"])
    np.testing.assert_array_equal(out["label"], data["label"])


def test_probability_and_determinism():
    def fired(seed):
        transform = make(0.5, seed)
        data = crop()
        return [bool((transform(data)["label"] == 2).any()) for _ in range(16)]

    runs = fired(1)
    assert 3 <= sum(runs) <= 13
    assert runs == fired(1)
    assert not any((make(0.0)(crop())["label"] == 2).any() for _ in range(5))


def test_metatensor_keeps_type_and_uses_pixdim():
    data = crop()
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    data = {k: MetaTensor(torch.as_tensor(v), affine=affine) for k, v in data.items()}
    out = make(1.0)(data)
    assert isinstance(out["image"], MetaTensor) and isinstance(out["label"], MetaTensor)
    assert torch.equal(out["image"].affine, affine)
    assert (out["label"] == 2).any()


def test_too_small_organ_stays_healthy_or_raises():
    data = crop()
    data["label"][:] = 0
    data["label"][0, 20, 20, 20] = 1
    out = make(1.0)(data)
    assert not (out["label"] == 2).any()
    strict = RandTumord(generator=HuGenerator("liver"), prob=1.0, skip_unusable=False)
    with pytest.raises(Exception, match="too small"):
        strict(data)
