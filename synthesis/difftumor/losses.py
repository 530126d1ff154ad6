"""Autoencoder losses: L1, a weight-free perceptual substitute, hinge GAN and feature matching.

The official perceptual term is VGG16 LPIPS on random 2D slices; its ImageNet weights must be
downloaded, which this project does not allow. ``multiscale_structure_loss`` replaces it with an
L1 on intensities and finite-difference gradients at three scales (edges and texture at 1, 1/2,
1/4 resolution); once the discriminator is on, discriminator feature matching (as official) adds
a learned feature distance.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _gradients(x: torch.Tensor) -> list[torch.Tensor]:
    """Forward differences along the 3 spatial axes of (B, C, X, Y, Z)."""
    return [x.diff(dim=axis) for axis in (2, 3, 4)]


def multiscale_structure_loss(recon: torch.Tensor, target: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Mean over scales of L1(gradients) + L1(intensity) after 2x average pooling per scale.

    Args:
        recon, target: (B, 1, X, Y, Z) images in [-1, 1].
    Returns:
        scalar loss.
    """
    total = recon.new_zeros(())
    for scale in range(scales):
        if scale:
            recon, target = F.avg_pool3d(recon, 2), F.avg_pool3d(target, 2)
        grad_term = sum(F.l1_loss(a, b) for a, b in zip(_gradients(recon), _gradients(target)))
        total = total + grad_term + (F.l1_loss(recon, target) if scale else 0.0)
        if min(recon.shape[2:]) < 4:
            return total / (scale + 1)
    return total / scales


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean D(x_hat) (hinge generator loss)."""
    return -fake_logits.mean()


def feature_matching_loss(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    """Sum over the intermediate discriminator layers of L1(real, fake) (logits excluded)."""
    pairs = list(zip(real_features[:-1], fake_features[:-1]))
    return sum(F.l1_loss(fake, real.detach()) for real, fake in pairs) if pairs else fake_features[0].new_zeros(())
