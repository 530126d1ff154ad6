"""The one interface the trainer uses for every synthetic regime (hu, difftumor, cellular, plug-ins).

A generator is constructed once per organ (it knows its organ variant, size-type
probabilities, device and weights) and is then called on a *batch* of crops, so that
DiffTumor can denoise many crops in one forward pass. Randomness is passed in.

Box-local work: a tumor changes a small box of a CT. A generator may also offer ``local``
(and ``replay_local``), which return each tumor on its box only (``LocalTumor``), so that a caller
on a whole CT (``tumorbench synthesize --count N``) pays for the tumor's box, not the CT.
``local_tumors`` / ``replay_tumor`` are how callers ask for that: they use the generator's
box-local methods where it has them and cut the box out of the full output where it does not
(plug-ins keep working unchanged). The output is the same either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

Box = tuple[slice, slice, slice]


class Piece(NamedTuple):
    """A box of a crop and the crop's new float32 CT (HU) and bool tumor mask on it."""

    box: Box
    ct_hu: np.ndarray
    tumor_mask: np.ndarray


@dataclass(frozen=True)
class LocalTumor:
    """One crop's tumor on its boxes: outside them the crop is unchanged and holds no tumor.

    Attributes:
        pieces: non-overlapping ``Piece`` s (a tumor of scattered nodules has one per nodule group,
            so its cost follows the nodules, not the box that spans them).
        params: the tumor's params dict (as ``SynthesisOutput.params``).
    """

    pieces: tuple[Piece, ...]
    params: dict[str, Any]

    @property
    def box(self) -> Box:
        """The union box of the pieces (zero-size when there are none)."""
        if not self.pieces:
            return (slice(0, 0),) * 3
        return tuple(slice(min(p.box[a].start for p in self.pieces), max(p.box[a].stop for p in self.pieces))
                     for a in range(3))

    def paste(self, ct_hu: np.ndarray, tumor_mask: np.ndarray | None = None) -> None:
        """Write this tumor into a (X, Y, Z) CT (and OR it into ``tumor_mask``) in place."""
        for piece in self.pieces:
            ct_hu[piece.box] = piece.ct_hu
            if tumor_mask is not None:
                tumor_mask[piece.box] |= piece.tumor_mask


@dataclass(frozen=True)
class SynthesisOutput:
    """Result of one generator call on a batch of B crops.

    Attributes:
        ct_hu: (B, X, Y, Z) float32 CT in HU with the synthetic tumors.
        tumor_mask: (B, X, Y, Z) bool, the synthetic tumor voxels.
        params: one JSON-serialisable dict per crop (key ``method`` names the generator), enough
            to replay that tumor: ``generator.replay(ct, organ_mask, params)`` on the same crop.
        boxes: optional, one box (slices) per crop outside which ``ct_hu`` equals the input and
            ``tumor_mask`` is False (None: anywhere in the crop).
    """

    ct_hu: np.ndarray
    tumor_mask: np.ndarray
    params: tuple[dict[str, Any], ...]
    boxes: tuple[Box | None, ...] | None = None

    @classmethod
    def from_local(cls, ct_hu: np.ndarray, tumors: Sequence[LocalTumor]) -> "SynthesisOutput":
        """Full (B, X, Y, Z) arrays: the input crops with each crop's box-local tumor pasted in."""
        out = np.array(ct_hu, dtype=np.float32, copy=True)
        mask = np.zeros(out.shape, bool)
        for crop, crop_mask, tumor in zip(out, mask, tumors):
            tumor.paste(crop, crop_mask)
        return cls(ct_hu=out, tumor_mask=mask, params=tuple(t.params for t in tumors),
                   boxes=tuple(t.box for t in tumors))


@runtime_checkable
class TumorGenerator(Protocol):
    """Adds one synthetic tumor (of a randomly drawn size type) to each crop.

    Args of ``__call__``:
        ct_hu: (B, X, Y, Z) float CT crops in HU (not windowed). Not modified.
        organ_mask: (B, X, Y, Z) bool organ masks of the crops. Not modified.
        spacing: voxel spacing in mm, shared by the batch.
        rng: numpy Generator, the only source of randomness.

    Optional: ``replay(ct_hu, organ_mask, params)`` on one (X, Y, Z) crop -> (ct_hu, tumor_mask),
    the tumor of one ``SynthesisOutput.params`` entry again (``tumorbench synthesize --replay``).
    ``warm_up()``, called once in the trainer's process before DataLoader workers
    fork (HuGenerator loads its compiled kernels there, so the workers share them).
    ``local(ct_hu, organ_mask, spacing, rng)`` -> list of ``LocalTumor`` (the same tumors as
    ``__call__`` with the same rng, each on its box) and ``replay_local(ct_hu, organ_mask, params)``
    -> ``LocalTumor``: box-local forms, used through ``local_tumors`` / ``replay_tumor``.
    """

    name: str
    organ: str

    def __call__(
        self,
        ct_hu: np.ndarray,
        organ_mask: np.ndarray,
        spacing: Sequence[float],
        rng: np.random.Generator,
    ) -> SynthesisOutput: ...


def changed_box(before: np.ndarray, after: np.ndarray, tumor_mask: np.ndarray) -> Box:
    """Tight box of the voxels where ``after`` differs from ``before`` or ``tumor_mask`` is set
    (a zero-size box when there are none): a whole-crop scan, for generators without ``local``."""
    touched = (after != before) | tumor_mask
    lo, hi = [], []
    for axis in range(3):
        hits = np.flatnonzero(touched.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(int(hits[0]) if hits.size else 0)
        hi.append(int(hits[-1]) + 1 if hits.size else 0)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _cut(ct_crop: np.ndarray, out_crop: np.ndarray, mask: np.ndarray, box: Box | None,
         params: dict[str, Any]) -> LocalTumor:
    box = changed_box(ct_crop, out_crop, mask) if box is None else box
    return LocalTumor((Piece(box, np.asarray(out_crop[box], np.float32), np.asarray(mask[box], bool)),), params)


def local_tumors(generator, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
                 rng: np.random.Generator, **kwargs: Any) -> list[LocalTumor]:
    """One ``LocalTumor`` per crop of a (B, X, Y, Z) batch: ``generator.local`` where the generator
    has it, else its full output cut to the changed box (``SynthesisOutput.boxes`` when given)."""
    local = getattr(generator, "local", None)
    if callable(local):
        return list(local(ct_hu, organ_mask, spacing, rng, **kwargs))
    out = generator(ct_hu, organ_mask, spacing, rng, **kwargs)
    boxes = out.boxes or (None,) * len(out.params)
    return [_cut(c, o, m, b, p) for c, o, m, b, p in zip(ct_hu, out.ct_hu, out.tumor_mask, boxes, out.params)]


def replay_tumor(generator, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any],
                 **kwargs: Any) -> LocalTumor:
    """One recorded tumor again on a (X, Y, Z) CT, box-local (``replay_local`` where the generator
    has it, else its ``replay`` cut to the changed box)."""
    local = getattr(generator, "replay_local", None)
    if callable(local):
        return local(ct_hu, organ_mask, params, **kwargs)
    out, mask = generator.replay(ct_hu, organ_mask, params, **kwargs)
    return _cut(ct_hu, out, mask, None, dict(params))
