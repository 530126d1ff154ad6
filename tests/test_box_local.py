"""Box-local synthesis (issue 30): a tumor drawn or replayed on its box, pasted into the CT, gives
the very voxels of the whole-CT path, and nothing outside the box changes."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmark.synthesize import _generate, _replay
from synthesis.cellular.generator import CellularGenerator
from synthesis.hu import HuGenerator
from synthesis.protocol import LocalTumor, Piece, SynthesisOutput, changed_box, local_tumors, replay_tumor

# sha256[:16] of (ct_hu, tumor_mask) of one generator call on `phantom()` with rng seed 7, recorded
# with the whole-CT code of main before the box-local path existed (commit df542af)
GOLDEN = {
    ("hu", "liver", "small"): "07c54bcc87cdc11a",
    ("hu", "liver", "mix"): "e8493b009b5fc0bb",
    ("hu", "kidney", "medium"): "7ca7c4f51cb1182b",
    ("hu", "kidney", "medium", 3): "9c761ffae3274331",  # rng seed 3: an exophytic tumor
    ("hu", "kidney", "medium", 10): "98d58756e63d2a36",  # exophytic
    ("hu", "pancreas", "tiny"): "1f3868bd09d63698",
    ("cellular", "liver", "tiny"): "8f6372d84308fddd",
    ("cellular", "liver", "small"): "732314805e563fc3",
    ("cellular", "liver", "medium"): "301eb5c999822aaf",
}


def phantom(shape=(80, 72, 64), seed=0):
    """CT with an organ, air, a bone-like slab and other labelled structures (exophytic limits)."""
    rng = np.random.default_rng(seed)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    organ = sum(((g - n / 2) / (0.36 * n)) ** 2 for g, n in zip(grid, shape)) <= 1
    ct = rng.normal(40.0, 12.0, shape).astype(np.float32)
    ct[organ] += 60.0
    ct[:, :, :6] = -900.0
    ct[:8] += 300.0
    others = np.zeros(shape, bool)
    others[:, :10, :] = True
    others &= ~organ
    return ct, organ, others


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def make(method, organ, size, *_):
    cls = HuGenerator if method == "hu" else CellularGenerator
    return cls(organ, size_probs={size: 1.0})


def others_kwargs(method, others):
    return {"other_organs": others} if method == "hu" else {}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_generator_output_equals_the_recorded_whole_ct_output(key):
    ct, organ, others = phantom()
    gen = make(*key)
    extra = {k: v[None] for k, v in others_kwargs(key[0], others).items()}
    out = gen(ct[None], organ[None], (1.0, 1.0, 1.0), np.random.default_rng(key[3] if len(key) > 3 else 7), **extra)
    assert out.boxes[0] == local_tumors(gen, ct[None], organ[None], (1.0, 1.0, 1.0),
                                        np.random.default_rng(key[3] if len(key) > 3 else 7), **extra)[0].box
    assert digest(out.ct_hu, out.tumor_mask) == GOLDEN[key]


@pytest.mark.parametrize("key", sorted(k for k in GOLDEN if len(k) == 3))
def test_box_local_tumor_pasted_equals_the_whole_ct_replay_and_outside_is_untouched(key):
    ct, organ, others = phantom()
    healthy = ct.copy()
    gen = make(*key)
    extra = others_kwargs(key[0], others)
    batch_extra = {k: v[None] for k, v in extra.items()}
    for seed in (3, 11):
        (tumor,) = local_tumors(gen, ct[None], organ[None], (1.0, 1.0, 1.0), np.random.default_rng(seed),
                                **batch_extra)
        full_ct, full_mask = gen.replay(ct, organ, tumor.params, **extra)  # the whole-CT path
        pasted, mask = ct.copy(), np.zeros(ct.shape, bool)
        tumor.paste(pasted, mask)
        assert np.array_equal(pasted, full_ct) and np.array_equal(mask, full_mask)
        assert mask.any()
        outside = np.ones(ct.shape, bool)
        outside[tumor.box] = False
        assert np.array_equal(full_ct[outside], ct[outside]) and not full_mask[outside].any()
        for piece in tumor.pieces:  # the pieces hold every change
            outside[piece.box] = True
        assert np.array_equal(full_ct[~outside], ct[~outside])
        assert_same_pieces(replay_tumor(gen, ct, organ, tumor.params, **extra), tumor)
        assert np.array_equal(ct, healthy)  # the input is never written


def assert_same_pieces(a: LocalTumor, b: LocalTumor) -> None:
    assert len(a.pieces) == len(b.pieces)
    for x, y in zip(a.pieces, b.pieces):
        assert x.box == y.box and np.array_equal(x.ct_hu, y.ct_hu) and np.array_equal(x.tumor_mask, y.tumor_mask)


def _whole_ct_count(gen, ct, organ, count, seed, extra):
    """`synthesize --count N` as main did it: whole-CT generator calls, whole-CT combine."""
    rng = np.random.default_rng(seed)
    out, tumor = ct.copy(), np.zeros(ct.shape, bool)
    for _ in range(count):
        drawn = gen(ct[None], organ[None], (1.0, 1.0, 1.0), rng, **{k: v[None] for k, v in extra.items()})
        larger = np.abs(drawn.ct_hu[0] - ct) > np.abs(out - ct)
        out[larger] = drawn.ct_hu[0][larger]
        tumor |= drawn.tumor_mask[0]
    return out, tumor


@pytest.mark.parametrize("key", [("hu", "liver", "small"), ("hu", "kidney", "medium"), ("cellular", "liver", "tiny")])
def test_count_and_replay_equal_the_whole_ct_combine(key):
    ct, organ, others = phantom()
    gen = make(*key)
    extra = others_kwargs(key[0], others)
    out, tumor, params = _generate(gen, ct, organ, (1.0, 1.0, 1.0), 4, 5, False, others if extra else None)
    ref_out, ref_tumor = _whole_ct_count(gen, ct, organ, 4, 5, extra)
    assert np.array_equal(out, ref_out) and np.array_equal(tumor, ref_tumor)
    replayed = _replay(gen, ct, organ, params, None, others if extra else None)
    assert np.array_equal(replayed[0], ref_out) and np.array_equal(replayed[1], ref_tumor)


class FullArrayPlugin:
    """A plug-in with only ``__call__`` and ``replay`` (no box-local methods)."""

    name, organ = "plugin", "liver"

    def __init__(self):
        self.inner = HuGenerator("liver", size_probs={"small": 1.0})

    def __call__(self, ct_hu, organ_mask, spacing, rng):
        out = self.inner(ct_hu, organ_mask, spacing, rng)
        return SynthesisOutput(out.ct_hu, out.tumor_mask, out.params)  # no boxes

    def replay(self, ct_hu, organ_mask, params):
        return self.inner.replay(ct_hu, organ_mask, params)


def test_a_plugin_without_local_methods_gets_the_tight_changed_box():
    ct, organ, _ = phantom()
    plugin = FullArrayPlugin()
    (tumor,) = local_tumors(plugin, ct[None], organ[None], (1.0, 1.0, 1.0), np.random.default_rng(2))
    full = plugin(ct[None], organ[None], (1.0, 1.0, 1.0), np.random.default_rng(2))
    pasted = ct.copy()
    tumor.paste(pasted)
    assert np.array_equal(pasted, full.ct_hu[0])
    changed = (full.ct_hu[0] != ct) | full.tumor_mask[0]
    for axis in range(3):  # tight: the box's faces each hold a changed voxel
        touched = np.flatnonzero(changed.any(axis=tuple(a for a in range(3) if a != axis)))
        assert (tumor.box[axis].start, tumor.box[axis].stop) == (touched[0], touched[-1] + 1)
    assert_same_pieces(replay_tumor(plugin, ct, organ, tumor.params), tumor)
    _generate(plugin, ct, organ, (1.0, 1.0, 1.0), 2, 0, False)  # the CLI path takes it too


def test_changed_box_of_nothing_is_empty_and_pastes_nothing():
    a = np.zeros((5, 6, 7), np.float32)
    box = changed_box(a, a, np.zeros(a.shape, bool))
    assert all(s.stop - s.start == 0 for s in box)
    tumor = LocalTumor((Piece(box, a[box], np.zeros(a[box].shape, bool)),), {})
    b = a.copy()
    tumor.paste(b)
    assert np.array_equal(a, b)


def test_the_organ_scan_is_reused_only_for_a_read_only_mask():
    """HuGenerator scans a read-only organ mask once for many tumors; a writable mask may change
    between calls, and another read-only mask is another organ: both are scanned again."""
    ct, organ, _ = phantom()
    spacing = (1.0, 1.0, 1.0)

    def fresh(mask, seed):
        return HuGenerator("liver", size_probs={"tiny": 1.0}).local(ct[None], mask[None], spacing,
                                                                    np.random.default_rng(seed))[0]

    gen = HuGenerator("liver", size_probs={"tiny": 1.0})
    mask = organ.copy()
    gen.local(ct[None], mask[None], spacing, np.random.default_rng(1))
    mask[:, :, 32:] = False  # the same (writable) array, another organ
    assert_same_pieces(gen.local(ct[None], mask[None], spacing, np.random.default_rng(2))[0], fresh(mask, 2))
    first, second = organ.copy(), mask.copy()
    for array in (first, second):
        array.flags.writeable = False
    gen.local(ct[None], first[None], spacing, np.random.default_rng(3))
    assert_same_pieces(gen.local(ct[None], second[None], spacing, np.random.default_rng(4))[0], fresh(second, 4))
    assert_same_pieces(gen.local(ct[None], first[None], spacing, np.random.default_rng(5))[0], fresh(first, 5))
