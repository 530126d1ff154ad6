"""The pre-specified analysis plan (docs/statistics.md) as constants: which metric is primary, which
test answers which question, and which comparisons share a Holm family. Captions, LaTeX and the
report header take their wording from here, so code and text name the same variants."""
from __future__ import annotations

PRIMARY = "tumor_dsc"
SECONDARY = ("tumor_nsd", "tumor-wise sensitivity", "patient-level sensitivity")
LEVEL = 0.95

WILCOXON = ("two-sided Wilcoxon signed-rank test, Pratt's zero method (zero differences ranked, then "
            "dropped), exact null distribution of all sign flips with mid-ranks for ties (normal "
            "approximation above 400 cases; the column 'test' says which)")
BOOTSTRAP = ("studentized (bootstrap-t) {level:.0%} interval, {n_boot} paired resamples of cases{seeds}")
SEEDS_HIERARCHICAL = " and, per regime, of training seeds (hierarchical)"
MCNEMAR = ("exact McNemar test (two-sided binomial test on the lesions hit by exactly one of the two "
           "regimes; same lesions of the same cases)")
CLUSTERED = ("Wilson {level:.0%} interval on the effective number of lesions n/deff, deff = design effect "
             "from {n_boot} bootstrap resamples of patients{seeds} (lesions cluster in patients)")
WILSON = "Wilson {level:.0%} score interval, no continuity correction"
HOLM_SEGMENTATION = ("Holm within each family organ × metric (all backbones × regime pairs of that organ "
                     "and metric); DSC is the primary metric, NSD secondary")
HOLM_DETECTION = "Holm within each family organ (all backbones × regime pairs of that organ)"
PLAN_LINE = ("Analysis plan (docs/statistics.md): primary metric tumor DSC; secondary NSD and tumor-wise / "
             "patient-level sensitivity. Paired tests on the same test cases pooled over folds: "
             "Wilcoxon signed-rank (Pratt zeros, exact) for DSC/NSD, exact McNemar for lesion detection; "
             "Holm within each organ × metric family; studentized bootstrap intervals over cases; "
             "lesion-level intervals clustered by patient, patient-level ones Wilson.")
ONE_SEED = ("Every cell was trained with one seed: intervals, p-values and rankings cover test-case "
            "sampling only, not the variation between training runs.")


def segmentation_family(organ: str, metric_label: str) -> str:
    return f"{organ} · {metric_label}"


def detection_family(organ: str) -> str:
    return f"{organ} · detection"


def bootstrap_text(n_boot: int, several_seeds: bool, template: str = BOOTSTRAP) -> str:
    return template.format(level=LEVEL, n_boot=f"{n_boot:,}", seeds=SEEDS_HIERARCHICAL if several_seeds else "")


def seeds_sentence(n_seeds: int) -> str:
    """The header/caption line about training variability."""
    if n_seeds <= 1:
        return ONE_SEED
    return (f"Up to {n_seeds} training seeds per cell: intervals and rankings resample seeds as well as "
            "cases (hierarchical bootstrap); the seed table shows the seed-to-seed sd.")


def families_note(sizes: dict[str, int], rule: str) -> str:
    listed = "; ".join(f"{name}: {m} test{'s' * (m != 1)}" for name, m in sizes.items()) or "none"
    return f"Holm families ({rule}): {listed}."
