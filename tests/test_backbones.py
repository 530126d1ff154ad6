import pytest
import torch

from models.backbones import BACKBONES, PadToMultiple, build_backbone, nnunet_kernels_strides

# Odd sizes; swin needs one axis > 32 (its /32 bottleneck must have > 1 voxel).
ODD_CROPS = {"unet": (33, 35, 37), "nnunet": (33, 35, 37), "swin_unetr": (33, 32, 32)}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_forward_on_odd_sizes_gives_logits_of_input_size(name):
    crop = ODD_CROPS[name]
    torch.manual_seed(0)
    model = build_backbone(name, "tiny", crop_size=crop, spacing=(2.0, 2.0, 2.0)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, *crop))
    assert out.shape == (1, 3, *crop)
    assert torch.isfinite(out).all()


def test_nnunet_plan_matches_dynunet_pipeline_for_paper_patch():
    # DiffTumor STEP3: patch 96^3 at spacing (0.77, 0.77, 1) -> 5 levels of 3^3 kernels,
    # strides [1,1,1] then [2,2,2] x 4 (96 -> 48 -> 24 -> 12 -> 6 stops below 8).
    kernels, strides = nnunet_kernels_strides((96, 96, 96), (0.77, 0.77, 1.0))
    assert strides == [[1, 1, 1]] + [[2, 2, 2]] * 4
    assert kernels == [[3, 3, 3]] * 5


def test_nnunet_plan_keeps_coarse_axis_until_it_catches_up():
    # z is 3.75x coarser: first level pools only x, y with 1-voxel z kernels; then spacing
    # ratio 1.875 <= 2 lets z pool too; it stops when x, y (96 -> 6) and z (32 -> 4) are < 8.
    kernels, strides = nnunet_kernels_strides((96, 96, 32), (0.8, 0.8, 3.0))
    assert strides == [[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert kernels == [[3, 3, 1]] + [[3, 3, 3]] * 4


def test_paper_unet_has_official_channels():
    model = build_backbone("unet", "paper", crop_size=(96, 96, 96))
    assert isinstance(model, PadToMultiple) and model.multiple == (16, 16, 16)
    assert model.net.channels == (16, 32, 64, 128, 256) and model.net.strides == (2, 2, 2, 2)
    assert model.net.num_res_units == 2


def test_nnunet_deep_supervision_adds_heads_in_training_only():
    model = build_backbone("nnunet", "tiny", crop_size=(32, 32, 32), spacing=(1, 1, 1), deep_supervision=True)
    x = torch.randn(2, 1, 31, 32, 33)
    assert model.train()(x).shape == (2, 3, 3, 31, 32, 33)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3, 31, 32, 33)


@pytest.mark.parametrize("name,crop,match", [
    ("unet", (7, 32, 32), "unet"),
    ("swin_unetr", (32, 32, 32), "at least one axis must be > 32"),
    ("swin_unetr", (64, 20, 64), "swin_unetr"),
    ("unet", (32, 32), "3 positive ints"),
])
def test_unusable_crop_sizes_raise_clear_errors(name, crop, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(name, "tiny", crop_size=crop)


def test_unknown_backbone_size_and_option_raise():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_backbone("resnet")
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        build_backbone("unet", "huge", crop_size=(32, 32, 32))
    with pytest.raises(ValueError, match="only available for 'nnunet'"):
        build_backbone("unet", crop_size=(32, 32, 32), deep_supervision=True)
