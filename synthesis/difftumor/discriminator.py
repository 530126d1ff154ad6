"""3D PatchGAN discriminator (MONAI ``PatchDiscriminator``, BatchNorm + LeakyReLU 0.2 as official).

The official VQGAN also has a 2D slice discriminator; we keep only the 3D one (see docs/difftumor.md).
"""
from __future__ import annotations

from monai.networks.nets import PatchDiscriminator


def build_discriminator(channels: int = 64, num_layers: int = 3) -> PatchDiscriminator:
    """PatchGAN on (B, 1, X, Y, Z) images in [-1, 1]; ``forward`` returns the list of
    intermediate feature maps with the patch logits last."""
    return PatchDiscriminator(spatial_dims=3, channels=channels, in_channels=1, out_channels=1,
                              num_layers_d=num_layers, norm="BATCH")
