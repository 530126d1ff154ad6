"""Segmentation backbones (3 output classes: background, organ, tumor; logits, no softmax).

Registry ``BACKBONES: name -> factory(size, crop_size, spacing, **plain kwargs)``; every
factory takes only plain, JSON-serialisable arguments so a checkpoint can rebuild its network
from ``TrainConfig``. Each network is wrapped in :class:`PadToMultiple`, so any crop size works:
the input is zero-padded to the network's size multiple and the logits are cropped back.

Paper settings (DiffTumor STEP3 ``main.py``): MONAI ``UNet`` channels (16,32,64,128,256),
strides (2,2,2,2), 2 residual units; ``DynUNet`` with the nnU-Net kernel/stride plan of
``dynunet_pipeline.get_kernels_strides``, instance norm, MONAI default filters; Swin UNETR
feature size 48 (v2 residual blocks as the official ``swin3d_unetrv2``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 3
SIZES = ("tiny", "paper")


class PadToMultiple(nn.Module):
    """Zero-pads (B, C, X, Y, Z) input up to ``multiple`` per axis and crops the logits back.

    Handles deep-supervision outputs (B, heads, C, X, Y, Z) of DynUNet as well.
    """

    def __init__(self, net: nn.Module, multiple: Sequence[int]):
        super().__init__()
        self.net = net
        self.multiple = tuple(int(m) for m in multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[-3:]
        target = [math.ceil(s / m) * m for s, m in zip(spatial, self.multiple)]
        if list(spatial) == target:
            return self.net(x)
        pad: list[int] = []
        for s, t in reversed(list(zip(spatial, target))):  # F.pad wants last axis first
            pad += [0, t - s]
        out = self.net(F.pad(x, pad))
        return out[..., : spatial[0], : spatial[1], : spatial[2]]


def _check_crop(name: str, crop_size: Sequence[int], multiple: Sequence[int]) -> tuple[int, ...]:
    crop = tuple(int(c) for c in crop_size)
    if len(crop) != 3 or any(c <= 0 for c in crop):
        raise ValueError(f"crop_size must be 3 positive ints (X, Y, Z voxels), got {tuple(crop_size)}")
    # A crop smaller than the total downsampling factor would put the bottleneck
    # entirely in padding: refuse instead of training a meaningless network.
    if any(c < m for c, m in zip(crop, multiple)):
        raise ValueError(
            f"crop_size {crop} is too small for backbone {name!r}: each axis must be >= {tuple(multiple)} "
            f"(its total downsampling factor)"
        )
    return crop


def build_unet(size: str, crop_size: Sequence[int], spacing: Sequence[float] | None = None) -> nn.Module:
    """MONAI UNet; paper: channels (16,32,64,128,256), strides (2,2,2,2), 2 residual units."""
    from monai.networks.nets import UNet

    if size == "paper":
        channels, strides, res_units = (16, 32, 64, 128, 256), (2, 2, 2, 2), 2
    else:
        channels, strides, res_units = (8, 16, 32, 64), (2, 2, 2), 1
    factor = math.prod(strides)
    _check_crop("unet", crop_size, (factor,) * 3)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES, channels=channels,
               strides=strides, num_res_units=res_units)
    return PadToMultiple(net, (factor,) * 3)


def nnunet_kernels_strides(
    crop_size: Sequence[int], spacing: Sequence[float], max_pools: int = 5
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net style plan, as ``dynunet_pipeline/create_network.py::get_kernels_strides``.

    An axis is downsampled while its feature map is >= 8 voxels and its spacing is at most
    twice the finest spacing (anisotropic axes catch up first); kernels are 1 along axes that
    are still > 2x coarser. Unlike the original, sizes need not divide evenly (the wrapper pads),
    and depth is capped at ``max_pools`` like nnU-Net.

    Returns:
        (kernels, strides): one [kx, ky, kz] per level; strides[0] == [1, 1, 1].
    """
    sizes = [float(s) for s in crop_size]
    spacings = [float(s) for s in spacing]
    kernels, strides = [], []
    while len(strides) < max_pools:
        ratios = [sp / min(spacings) for sp in spacings]
        stride = [2 if r <= 2 and s >= 8 else 1 for r, s in zip(ratios, sizes)]
        if all(s == 1 for s in stride):
            break
        kernels.append([3 if r <= 2 else 1 for r in ratios])
        strides.append(stride)
        sizes = [s / st for s, st in zip(sizes, stride)]
        spacings = [sp * st for sp, st in zip(spacings, stride)]
    strides.insert(0, [1, 1, 1])
    kernels.append([3, 3, 3])
    return kernels, strides


def build_nnunet(
    size: str, crop_size: Sequence[int], spacing: Sequence[float] | None = None,
    deep_supervision: bool = False,
) -> nn.Module:
    """MONAI DynUNet with the nnU-Net plan; paper: MONAI default filters min(2**(5+i), 320).

    With ``deep_supervision`` the train-mode output is (B, 1 + heads, C, X, Y, Z).
    """
    from monai.networks.nets import DynUNet

    spacing = (1.0, 1.0, 1.0) if spacing is None else spacing
    kernels, strides = nnunet_kernels_strides(crop_size, spacing)
    factor = [math.prod(s[axis] for s in strides) for axis in range(3)]
    _check_crop("nnunet", crop_size, factor)
    if len(strides) < 2:
        raise ValueError(f"crop_size {tuple(crop_size)} is too small for backbone 'nnunet' (no downsampling)")
    base, cap = (32, 320) if size == "paper" else (8, 64)
    filters = [min(base * 2**i, cap) for i in range(len(strides))]
    net = DynUNet(
        spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES, kernel_size=kernels, strides=strides,
        upsample_kernel_size=strides[1:], filters=filters, norm_name="instance",
        deep_supervision=deep_supervision, deep_supr_num=min(2, len(strides) - 2) if deep_supervision else 1,
    )
    return PadToMultiple(net, factor)


def build_swin_unetr(size: str, crop_size: Sequence[int], spacing: Sequence[float] | None = None) -> nn.Module:
    """MONAI SwinUNETR (MONAI >= 1.5: no img_size; input sizes must be multiples of 32)."""
    from monai.networks.nets import SwinUNETR

    crop = _check_crop("swin_unetr", crop_size, (32, 32, 32))
    if all(c <= 32 for c in crop):
        # The /32 bottleneck would be a single voxel, which instance norm rejects in training.
        raise ValueError(f"crop_size {crop} is too small for backbone 'swin_unetr': at least one axis must be > 32")
    net = SwinUNETR(
        in_channels=1, out_channels=NUM_CLASSES, feature_size=48 if size == "paper" else 12,
        depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), window_size=7, spatial_dims=3,
        use_v2=size == "paper",
    )
    return PadToMultiple(net, (32, 32, 32))


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "unet": build_unet,
    "nnunet": build_nnunet,
    "swin_unetr": build_swin_unetr,
}


def build_backbone(
    name: str,
    size: str = "tiny",
    crop_size: Sequence[int] = (96, 96, 96),
    spacing: Sequence[float] | None = None,
    **kwargs,
) -> nn.Module:
    """Build backbone ``name`` (``unet|nnunet|swin_unetr``) at ``size`` (``tiny|paper``).

    Args:
        crop_size: training patch (X, Y, Z) voxels; used for validation and the nnU-Net plan.
        spacing: voxel spacing (mm) of the data, used by the nnU-Net plan (default 1 mm).
        kwargs: backbone-specific plain options (``deep_supervision`` for nnunet).

    Returns:
        Module mapping (B, 1, X, Y, Z) windowed CT to (B, 3, X, Y, Z) logits.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} for backbone {name!r}; expected one of {SIZES}")
    if kwargs.get("deep_supervision") and name != "nnunet":
        raise ValueError(f"deep_supervision is only available for 'nnunet', not {name!r}")
    if name != "nnunet":
        kwargs.pop("deep_supervision", None)
    return BACKBONES[name](size=size, crop_size=crop_size, spacing=spacing, **kwargs)
