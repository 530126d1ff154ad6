"""Real and synthetic tumors of one dataset, measured for the fidelity section.

Only the training cases of ``fold`` are read (``scoring_view``): the fold's test cases are touched
by nothing but the evaluation, so a scorecard never looks at them. Real tumors: every tumor of the
labeled training cases. Synthetic tumors: ``n_draws`` calls of the generator with its own default
size distribution (what it would draw during training), each on a healthy training case (round
robin, random order), each draw measured on the CT it returns and the healthy labels with its tumor
painted as label 2.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from benchmark.errors import InputError
from benchmark.realism_collect import load_case, synthesize_on_case
from benchmark.scorecard.fidelity import measure_case
from synthesis.errors import SynthesisInputError


def scoring_view(dataset: Any, fold: int) -> Any:
    """``dataset`` without the test (val) cases of ``fold``."""
    train, _ = dataset.fold(fold)
    kept = dataset.cases[dataset.cases["case_id"].astype(str).isin(set(train))]
    return dataclasses.replace(dataset, cases=kept)


def real_rows(view: Any, progress: bool = True) -> Any:
    """One row per real tumor of the labeled cases in ``view`` (columns of fidelity.measure_case + case)."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    for case_id in tqdm(view.case_ids("labeled"), desc=f"{view.name}: real tumors", disable=not progress,
                        leave=False):
        ct, labels = load_case(view, case_id)
        rows += [{"source": "real", "case": case_id, **r} for r in measure_case(ct, labels, view.spacing)]
    if not rows:
        raise InputError(f"{view.root}: no real tumor (label 2, >= 8 mm³) in the labeled training cases")
    return pd.DataFrame(rows)


def synthetic_rows(view: Any, name: str, generator_kwargs: dict[str, Any], n_draws: int, rng: np.random.Generator,
                   progress: bool = True) -> Any:
    """One row per tumor of ``n_draws`` generator calls; a draw without a tumor is one row of NaNs
    with ``lesions_per_case`` 0 (it counts in the per-case quantity)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from synthesis.registry import make_generator

    healthy = view.case_ids("healthy")
    if not healthy:
        raise InputError(f"{view.root / 'cases.csv'}: no healthy training case to synthesize on")
    order = [healthy[i] for i in rng.permutation(len(healthy))]
    generator = make_generator(name, view.organ, **generator_kwargs)
    rows, loaded = [], (None, None)
    for draw in tqdm(range(n_draws), desc=f"{view.name}: {name} draws", disable=not progress, leave=False):
        case_id = order[draw % len(order)]
        if loaded[0] != case_id:
            loaded = (case_id, load_case(view, case_id))
        ct, labels = loaded[1]
        try:
            ct_out, tumor = synthesize_on_case(generator, ct, labels, view.spacing, rng)
        except SynthesisInputError as exc:
            tqdm.write(f"warning: {name} on {case_id} skipped: {exc}", file=sys.stderr)
            continue
        painted = np.where(tumor, np.uint8(2), labels)
        measured = measure_case(ct_out, painted, view.spacing, given_organ=labels > 0)
        rows += [{"source": name, "case": f"draw_{draw:04d}", "healthy_case": case_id, **r}
                 for r in (measured or [{"lesions_per_case": 0}])]
    return pd.DataFrame(rows)
