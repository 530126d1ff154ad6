"""What a report's own numbers come from: data, preset, training length, test cases per fold.

Shown at the top of the report so that nobody mistakes a CPU demo on the phantom for the paper's
experiment; the published columns are always the DiffTumor paper's (patient CTs, 96^3 models).
Reads the cells' MLflow params/tags, their datasets' ``dataset.json`` and their summary.json.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tumorbench_common.mlflow_tags import DATASET_DIR, read_tag

TINY_DIFFTUMOR_NOTE = ("The DiffTumor cells use the tiny generator preset, whose autoencoder keeps little of an "
                       "early tumor's contrast: the early tumors they train on are dark blobs from a sampler bias, "
                       "not learned tumor appearance (docs/difftumor.md, \"What the tiny early models paint\").")
PUBLISHED_NOTE = ("Published columns are the DiffTumor paper's (supplementary tables): models with 96³ "
                  "crops trained on patient CTs, not results of this run.")


def _dataset_line(dataset_dir: str) -> str:
    try:
        meta = json.loads((Path(dataset_dir) / "dataset.json").read_text())
    except (OSError, ValueError):
        return Path(dataset_dir).name or "?"
    spacing = "×".join(f"{float(s):g}" for s in meta.get("spacing", [])) or "?"
    source = meta.get("source_format", "?")
    return f"{meta.get('name', Path(dataset_dir).name)} ({source}, {meta.get('num_cases', '?')} cases, {spacing} mm)"


def _iterations(params: dict[str, str]) -> str:
    epochs, per_epoch = params.get("epochs"), params.get("iters_per_epoch")
    if epochs and per_epoch and per_epoch != "None":
        return f"{int(epochs) * int(per_epoch)} iterations ({epochs} epochs × {per_epoch})"
    return f"{epochs or '?'} epochs"


def _test_cases(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "?"
    patient = summary.get("patient", {})
    tumor = int(patient.get("tp", 0)) + int(patient.get("fn", 0))
    healthy = int(patient.get("tn", 0)) + int(patient.get("fp", 0))
    return f"{tumor + healthy} ({tumor} with tumor, {healthy} healthy)"


def _uses_tiny_difftumor(params: dict[str, str]) -> bool:
    """A difftumor cell whose generators are tiny: trained by the runner ("auto" is always tiny) or a
    checkpoint folder whose diffusion JSONs say preset "tiny"."""
    if params.get("generator.name") != "difftumor":
        return False
    checkpoint = params.get("generator.checkpoint", "")
    if checkpoint in ("", "auto"):
        return checkpoint == "auto"
    record = next(iter(sorted(Path(checkpoint).glob("diffusion_*_early.json"))), None)
    try:
        return record is not None and json.loads(record.read_text()).get("preset") == "tiny"
    except (OSError, ValueError):
        return False


def _scoring_line(cells) -> str:
    """How the cells were scored, from their ``evaluate.*`` params (logged by the runner)."""
    def values(key: str) -> str:
        found = sorted({c.params.get(f"evaluate.{key}") for c in cells} - {None})
        return " / ".join(found) if found else "not recorded"

    organ_filter = values("organ_filter")
    if values("organ_postprocess") == "False":
        organ_filter = "off (organ post-processing disabled)"
    return (f"Scoring: on each case's native grid; tumor calls kept only in the organ of the organ filter "
            f"'{organ_filter}' (margin 0 mm; 'reference' = the test CT's reference organ label, an oracle the "
            f"paper's model-predicted organ mask was not); lesions from {values('min_lesion_mm3')} mm³; patient "
            f"called positive by the official rule (1 mm, 3×3×3 erosion) above {values('patient_threshold_mm3')} mm³.")


def describe_run(grid) -> list[str]:
    """Lines for the report header: per organ the data and test fold size, then preset/training."""
    cells = list(grid.cells.values())
    if not cells:
        return [PUBLISHED_NOTE]
    lines = []
    for organ in sorted({c.organ for c in cells}):
        first = next(c for c in cells if c.organ == organ)
        folds = sorted({c.fold for c in cells if c.organ == organ})
        lines.append(f"{organ}: {_dataset_line(read_tag(first.tags, DATASET_DIR, ''))}; test cases in fold "
                     f"{folds[0]}: {_test_cases(grid.summary(first))}" + (f" (folds {folds})" if len(folds) > 1 else ""))
    params = cells[0].params
    presets = sorted({c.params.get("preset", "?") for c in cells})
    lines.append(f"Backbone preset {', '.join(presets)}; {_iterations(params)} of batch "
                 f"{params.get('batch_size', '?')}, crop {params.get('crop_size', '?')} per cell; {len(cells)} cells.")
    lines.append(_scoring_line(cells))
    if any(_uses_tiny_difftumor(c.params) for c in cells):
        lines.append(TINY_DIFFTUMOR_NOTE)
    lines += _training_data_lines(grid)
    return lines + [PUBLISHED_NOTE]


def _training_data_lines(grid) -> list[str]:
    """n training CTs per regime beside the paper's, and generators of unknown training data."""
    from reports.training_sizes import training_size_line, unknown_generator_line

    runs = list(getattr(grid, "runs", {}).values()) or list(grid.cells.values())
    return [line for line in (training_size_line(runs), unknown_generator_line(grid)) if line]
