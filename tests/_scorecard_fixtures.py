"""Shared by the scorecard tests: a toy dataset with folds, plug-in generators installed from source
(the example sphere, and a generator that pastes real tumors), and a fixed engineering section.

The copy generator registers twice: ``copyreal`` pastes a real tumor of the dataset's labeled
training cases (exact HU values and shape) into the healthy organ; ``copyreal_loud`` does the same
with the tumor's HU deviations from its mean tripled, a texture no real tumor has.
"""
from __future__ import annotations

import sys
from pathlib import Path

from test_realism_helpers import write_dataset

COPY_MODULE = '''
import numpy as np
from synthesis.protocol import SynthesisOutput
from synthesis.registry import tumor_generator


def _real_tumors(source):
    import nibabel as nib
    from benchmark.data import Dataset
    from benchmark.lesions import label_components
    from benchmark.scorecard.collect import scoring_view

    view = scoring_view(Dataset.open(source), 0)
    tumors = []
    for case_id in view.case_ids("labeled"):
        ct = np.asarray(nib.load(view.ct_path(case_id)).dataobj, np.float32)
        comp, found = label_components(np.asarray(nib.load(view.labels_path(case_id)).dataobj) == 2, 8)
        for index, box, _ in found:
            offsets = np.argwhere(comp == index)
            tumors.append((offsets - offsets.min(0), ct[tuple(offsets.T)]))
    return tumors


class CopyReal:
    name = "copyreal"

    def __init__(self, organ, source, gain):
        self.tumors, self.gain = _real_tumors(source), gain

    def __call__(self, ct_hu, organ_mask, spacing, rng):
        out, masks, params = np.array(ct_hu, np.float32), np.zeros(ct_hu.shape, bool), []
        for b in range(len(ct_hu)):
            k = int(rng.integers(len(self.tumors)))
            offsets, values = self.tumors[k]
            inside = np.argwhere(organ_mask[b])
            for _ in range(200):  # a random organ corner where the whole tumor lies in the organ
                at = tuple((offsets + inside[int(rng.integers(len(inside)))]).T)
                if all((a < n).all() for a, n in zip(at, organ_mask[b].shape)) and organ_mask[b][at].all():
                    break
            else:
                continue
            out[b][at] = values.mean() + self.gain * (values - values.mean())
            masks[b][at] = True
            params.append({"method": "copyreal", "tumor": k})
        return SynthesisOutput(out, masks, tuple(params))


@tumor_generator(display_name="Copy of real tumors (test)", licence="Apache-2.0")
def make_copyreal(organ, *, source):
    return CopyReal(organ, source, 1.0)


@tumor_generator(display_name="Copy of real tumors, texture x3 (test)", licence="Apache-2.0")
def make_copyreal_loud(organ, *, source):
    return CopyReal(organ, source, 3.0)
'''


def toy_dataset(root: Path, n_labeled: int = 16, n_healthy: int = 8, seed: int = 0) -> Path:
    """test_realism_helpers' ellipsoid-organ liver dataset (2 mm, 2 spheres per labeled case) with splits."""
    from benchmark.data.splits import make_splits

    write_dataset(root, "liver", n_labeled, n_healthy, seed, radii=(4.0, 5.0, 6.0, 7.0, 8.0, 9.0))
    make_splits(root)
    return root


def install_copy_generator(site: Path) -> Path:
    """The copy generators as an installed package (dist-info with entry points) under ``site``."""
    (site / "tumorbench_copyreal").mkdir(parents=True)
    (site / "tumorbench_copyreal" / "__init__.py").write_text(COPY_MODULE)
    info = site / "tumorbench_copyreal-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tumorbench-copyreal\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tumorbench.generators]\ncopyreal = tumorbench_copyreal:make_copyreal\n"
                                           "copyreal_loud = tumorbench_copyreal:make_copyreal_loud\n")
    return site


def forget_modules(prefix: str) -> None:
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


def engineering_ok(generator, organ, *, generator_kwargs=None, seed=0, quick=False, progress=True):
    """An engineering section with every check passed (the real one, benchmark/scorecard/engineering.py, has its own tests)."""
    return {"timing": {"5-10": {"ms_per_tumor": 2.0, "hu_ms_per_tumor": 4.0, "ratio": 0.5}},
            "peak_memory_mb": 50.0, "replay": {"ok": True, "detail": "bit-identical"},
            "small_organ_failure": {"rate": 0.0, "n": 10, "ci": [0.0, 0.28]},
            "determinism_workers": {"ok": True, "detail": "0 vs 2 workers identical"},
            "consistency": {"3 mm": {"ok": True}}, "exophytic": {"ok": True}, "refusals": []}


def engineering_refusing(refused: str):
    """Like ``engineering_ok`` but generator ``refused`` fails the consistency check."""
    def section(generator, organ, **kwargs):
        out = engineering_ok(generator, organ, **kwargs)
        if generator == refused:
            out["consistency"] = {"3 mm": {"ok": False, "empty_masks": 2}}
            out["refusals"] = ["consistency: 2 reported tumors have an empty mask on the 3 mm CT"]
        return out
    return section


def hand_cards(out: Path) -> list[dict]:
    """Two scored cards (fidelity from benchmark.scorecard.fidelity on random tumors) and a refused one,
    rendered with reports.scorecard_html into ``out`` as `tumorbench scorecard` lays them out."""
    import numpy as np
    import pandas as pd

    from benchmark.scorecard.fidelity import QUANTITIES, compare
    from benchmark.scorecard.run import _finite, write_cards

    rng = np.random.default_rng(0)
    cards = []
    for k, (generator, status) in enumerate((("hu", "scored"), ("sphere", "scored"), ("difftumor", "refused"))):
        card = {"generator": generator, "organ": "liver", "dataset": "toy_liver", "dataset_path": "/x",
                "dataset_fingerprint": "abc", "fold": 0, "seed": 0, "settings": {"quick": True},
                "generator_kwargs": {}, "engineering": engineering_ok(generator, "liver"), "status": status,
                "refusals": [], "realism": [], "fidelity": None, "downstream": None, "headline": None}
        if status == "refused":
            card["refusals"] = ["consistency: a reported tumor has an empty mask on the 3 mm CT"]
        else:
            frames = [pd.DataFrame({"source": source, "case": [f"c{i // 2}" for i in range(20)],
                                    **{q: rng.normal(k * (source != "real"), 1, 20) for q in QUANTITIES}})
                      for source in ("real", generator)]
            (out / generator / "liver").mkdir(parents=True)
            pd.concat(frames).to_csv(out / generator / "liver" / "fidelity.csv", index=False)
            card["fidelity"] = {"n_real_tumors": 20, "n_real_cases": 10, "n_draws": 20, "n_generator_tumors": 20,
                                "tests": compare(*frames), "test": "two-sided Mann-Whitney U", "effect": "Cliff's delta",
                                "correction": "Holm", "outside_given_organ_max": 0.0}
            card["realism"] = [{"size_bin": "all", "n_real": 20, "n_other": 20, "n_matched": 10, "c2st_auc": 0.6 + k / 10,
                                "c2st_auc_p": 0.04, "c2st_auc_matched": 0.6, "c2st_auc_matched_sd": 0.1,
                                "c2st_auc_floor": 0.5, "c2st_auc_floor_sd": 0.1, "frechet_pca": 3.0, "frechet_pca_p": 0.2,
                                "frechet_pca_matched": 4.0, "frechet_pca_matched_sd": 1.0, "frechet_pca_floor": 3.0,
                                "frechet_pca_floor_sd": 1.0},
                               {"size_bin": "5-10", "n_real": 2, "n_other": 3, "skipped": "fewer than 4 tumors on a side"}]
            card["headline"] = {"c2st_auc_matched": 0.6 + k / 10, "c2st_auc_floor": 0.5, "frechet_pca_matched": 4.0,
                                "frechet_pca_floor": 3.0, "fidelity_differs": k, "fidelity_tests": 7,
                                "max_abs_cliffs_delta": 0.3 * k, "time_ratio_vs_hu": 1.0 + k, "peak_memory_mb": 50.0,
                                "replay_ok": True, "delta_dsc": 1.5 - k, "delta_dsc_ci": [-1.0, 3.0 - k]}
        if generator == "hu":  # a downstream section as benchmark.scorecard.downstream writes it
            card["downstream"] = {"experiment": "grid", "notes": [], "rows": [
                {"organ": "liver", "backbone": "unet", "metric": "DSC", "a": "real", "b": "hu", "mean_a": 60.0,
                 "mean_b": 62.5, "delta": 2.5, "ci": [-1.0, 6.0], "p_wilcoxon": 0.2, "test": "Wilcoxon signed-rank",
                 "holm_family": "liver × DSC", "p_holm": 0.4, "n_cases": 12, "folds": 1}]}
        cards.append(_finite(card))
    write_cards(cards, out)
    return cards
