"""MONAI dictionary transform that adds synthetic tumors to healthy crops.

Like the reference ``TumorGenerated`` (SyntheticTumors) it only touches samples whose label
has no tumor (``max(label) <= 1``), fires with probability ``prob`` (DiffTumor: 0.5 on healthy
crops) and works in HU, so place it before intensity windowing. Unlike the reference it
accepts any ``TumorGenerator`` (hu, difftumor) and the crop's real spacing.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence

import numpy as np
from monai.transforms import MapTransform, Randomizable

from synthesis.errors import SynthesisInputError
from synthesis.protocol import TumorGenerator


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _like(new: np.ndarray, template: Any) -> Any:
    """``new`` as the same container type (numpy / torch / MetaTensor with meta) as ``template``."""
    if hasattr(template, "detach"):
        out = template.clone()
        out[...] = out.new_tensor(new)
        return out
    return new.astype(np.asarray(template).dtype, copy=False)


class RandTumord(Randomizable, MapTransform):
    """Add one synthetic tumor to a healthy channel-first crop with probability ``prob``.

    Args:
        keys: (image key, label key); image (1, X, Y, Z) in HU, label (1, X, Y, Z) 0/1(/2).
        generator: any ``TumorGenerator`` (e.g. ``synthesis.hu.HuGenerator("liver")``).
        prob: probability to synthesise on a healthy crop.
        spacing_key: optional key holding the (3,) spacing in mm; else the image's MetaTensor
            ``pixdim``, else ``spacing``.
        spacing: fallback spacing in mm.
        tumor_label: label value written for tumor voxels.
        skip_unusable: leave the crop healthy (instead of raising) when its organ part is too
            small for the drawn tumor; such crops stay tumor-free negatives.
    """

    def __init__(self, keys: Sequence[Hashable] = ("image", "label"), generator: TumorGenerator | None = None,
                 prob: float = 0.5, spacing_key: Hashable | None = None,
                 spacing: Sequence[float] = (1.0, 1.0, 1.0), tumor_label: int = 2,
                 skip_unusable: bool = True, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if generator is None or len(self.keys) != 2:
            raise ValueError("RandTumord needs keys=(image, label) and a generator")
        self.generator = generator
        self.prob = float(prob)
        self.spacing_key = spacing_key
        self.spacing = tuple(float(s) for s in spacing)
        self.tumor_label = tumor_label
        self.skip_unusable = skip_unusable
        self._do = False
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.random_sample() < self.prob
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def _spacing(self, data: Mapping, image: Any) -> tuple[float, ...]:
        if self.spacing_key is not None and self.spacing_key in data:
            return tuple(float(s) for s in _to_numpy(data[self.spacing_key]).ravel()[:3])
        if getattr(image, "pixdim", None) is not None and len(image.pixdim) == 3:
            return tuple(float(s) for s in _to_numpy(image.pixdim))
        return self.spacing

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image_key, label_key = self.keys
        self.randomize()
        label = _to_numpy(d[label_key])
        if not self._do or label.max() > 1:  # real tumor present, or not drawn: unchanged
            return d
        image = d[image_key]
        ct = _to_numpy(image).astype(np.float32)
        try:
            out = self.generator(ct[:1], label[:1] > 0, self._spacing(d, image), np.random.default_rng(self._seed))
        except SynthesisInputError:
            if not self.skip_unusable:
                raise
            return d
        new_label = label.copy()
        new_label[:1][out.tumor_mask] = self.tumor_label
        new_ct = ct.copy()
        new_ct[:1] = out.ct_hu
        d[image_key] = _like(new_ct, image)
        d[label_key] = _like(new_label, d[label_key])
        return d
