"""Score reader answers of a Visual Turing Test against its key (Table 1 of the seed papers).

Real-vs-synthetic task: "positive" = synthetic. Sensitivity = synthetic cases the reader called
synthetic; specificity = real cases called real; accuracy over answered cases; ``auc`` = ROC AUC
of the confidence ratings signed by the answer (+c synthetic, -c real). Organ task: accuracy and
per-organ recall. Chance is ``1 / number of choices`` (0.5, or 1/3 for the 3-organ task; AUC 0.5).

Every metric is reported for all cases and per group: generator (real cases + that generator's),
organ and size bin, each per reader and pooled over readers. Per-reader rows: Wilson 95% CI and
an exact binomial test against chance; pooled rows: case-clustered bootstrap CI and a case-level
sign test (reports.reader_study.agreement). Unanswered cases are left out of the denominators
and counted in ``n_missing``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from reports.reader_study import agreement as agr
from tumorbench_common.io import load_file

ANSWER_COLUMNS = ("case_id", "answer")


class AnswerSheetError(ValueError):
    """An answer file or key does not match the study; the message names the file."""


def read_answers(path: str | Path, key: Any, choices: Sequence[str], study_id: str | None = None) -> tuple[str, Any]:
    """(reader name, DataFrame case_id/answer/confidence) of one exported answer CSV.

    A sheet carrying a ``study_id`` column (the page exports one) must belong to ``study_id``.
    """
    import pandas as pd

    path = Path(path)
    sheet = load_file(path, "answer file", lambda p: pd.read_csv(p, dtype=str, keep_default_na=False), AnswerSheetError)
    missing = [c for c in ANSWER_COLUMNS if c not in sheet.columns]
    if missing:
        raise AnswerSheetError(f"{path}: columns {missing} missing (expected reader,case_id,answer,confidence)")
    unknown = sorted(set(sheet["case_id"]) - set(key["case_id"]))
    if unknown:
        raise AnswerSheetError(f"{path}: case ids {unknown[:5]} are not in this study's key.csv")
    foreign = sorted(set(sheet.get("study_id", pd.Series(dtype=str))) - {"", study_id}) if study_id else []
    if foreign:
        raise AnswerSheetError(f"{path}: study_id {foreign[0]} is not this study's ({study_id}): answers of another study")
    sheet["answer"] = sheet["answer"].str.strip().str.lower()
    confidence = sheet.get("confidence", pd.Series("", index=sheet.index)).str.strip()
    if not confidence.isin(["", "1", "2", "3", "4", "5"]).all():
        raise AnswerSheetError(f"{path}: confidence must be 1-5 or empty, got {sorted(set(confidence))[:5]}")
    sheet["confidence"] = confidence
    bad = sorted(set(sheet["answer"]) - set(choices) - {""})
    if bad:
        raise AnswerSheetError(f"{path}: answers {bad} not allowed (expected one of {list(choices)} or empty)")
    names = [n for n in sheet.get("reader", pd.Series(dtype=str)).unique() if n]
    reader = names[0] if len(names) == 1 else path.stem
    return reader, sheet.drop_duplicates("case_id", keep="last")


SCORE_COLUMNS = ["reader", "group", "level", "metric", "value", "successes", "n", "ci_low", "ci_high",
                 "ci_method", "chance", "p_value", "n_missing"]


def case_groups(key: Any, task: str) -> Iterator[tuple[str, str, np.ndarray]]:
    """(group, level, case mask): all cases, then per generator (real cases + that generator's
    cases, real-vs-synthetic only), organ and size bin when the study has more than one."""
    yield "all", "all", np.ones(len(key), bool)
    if task == "real-vs-synthetic" and "source" in key:
        for gen in sorted(set(key["source"].astype(str)) - {"real"}):
            yield "generator", gen, key["source"].isin(["real", gen]).to_numpy()
    for column in ("organ", "size_bin"):
        if column in key and key[column].nunique() > 1:
            for level in sorted(key[column].astype(str).unique()):
                yield column, level, (key[column].astype(str) == level).to_numpy()


def _metric_masks(reads: Any, task: str) -> dict[str, np.ndarray]:
    """Metric name -> which answered reads count in its denominator."""
    truth = reads["truth"].to_numpy()
    masks = {"accuracy": np.ones(len(reads), bool)}
    if task == "real-vs-synthetic":
        masks.update(sensitivity=truth == "synthetic", specificity=truth == "real")
    else:
        masks.update({f"recall_{organ}": truth == organ for organ in sorted(set(truth))})
    return masks


def score_reads(reads: Any, task: str, chance: float, pooled: bool, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Metric rows for answered ``reads`` (case_id, truth, answer, confidence) of one group."""
    correct = (reads["truth"] == reads["answer"]).to_numpy()
    rows = []
    for metric, mask in _metric_masks(reads, task).items():
        if pooled:
            cases = reads.loc[mask, "case_id"].to_numpy()
            num = np.bincount(np.unique(cases, return_inverse=True)[1], weights=correct[mask]) if len(cases) else np.zeros(0)
            den = np.bincount(np.unique(cases, return_inverse=True)[1]) if len(cases) else np.zeros(0)
            row = agr.clustered_row(num, den, chance, rng)
        else:
            row = agr.binomial_row(int(correct[mask].sum()), int(mask.sum()), chance)
        rows.append({"metric": metric, "chance": chance, **row})
    if task == "real-vs-synthetic":
        truth = (reads["truth"] == "synthetic").to_numpy().astype(int)
        score = agr.confidence_score(reads["answer"].to_numpy(), reads["confidence"].to_numpy(), "synthetic")
        rows.append({"metric": "auc", "chance": 0.5, **agr.auc_row(truth, score, reads["case_id"].to_numpy(), rng)})
    return rows


def score_study(key: Any, sheets: Sequence[tuple[str, Any]], task: str, chance: float, seed: int = 0) -> tuple[Any, Any]:
    """Score table (per reader and ``pooled``, per group) and pooled confusion matrix (truth x answer).

    Args:
        key: DataFrame with ``case_id, truth`` (and ``source, organ, size_bin`` for the groups).
        sheets: (reader, answers DataFrame) pairs from :func:`read_answers`.
        chance: accuracy of guessing (1 / number of choices).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    reads = []
    for reader, sheet in sheets:
        sheet = sheet.reindex(columns=["case_id", "answer", "confidence"], fill_value="")
        merged = key.merge(sheet, on="case_id", how="left").fillna({"answer": "", "confidence": ""})
        reads.append(merged.assign(reader=reader))
    reads_all = pd.concat(reads, ignore_index=True)
    readers = [(name, reads_all[reads_all.reader == name], False) for name, _ in sheets]
    readers += [("pooled", reads_all, True)] if len(sheets) > 1 else []
    rows = []
    for group, level, mask in case_groups(key, task):
        ids = set(key.loc[mask, "case_id"])
        for name, frame, pooled in readers:
            in_group = frame[frame["case_id"].isin(ids)]
            answered = in_group[in_group["answer"] != ""]
            for row in score_reads(answered, task, chance, pooled, rng):
                rows.append({"reader": name, "group": group, "level": level, **row,
                             "n_missing": len(in_group) - len(answered)})
    answered = reads_all[reads_all["answer"] != ""]
    confusion = pd.crosstab(answered["truth"], answered["answer"]).rename_axis(index="truth", columns="answer")
    return pd.DataFrame(rows, columns=SCORE_COLUMNS), confusion


def score_files(study_dir: str | Path, answer_paths: Sequence[str | Path], out_dir: str | Path | None = None,
                seed: int = 0) -> Any:
    """Read ``study_dir``'s key and the answer CSVs; write into ``out_dir`` (default ``study_dir``)
    ``scores.csv`` (Table 1: per reader/pooled and group), ``agreement.csv`` (kappa),
    ``confusion.csv``, ``scores.png`` (per reader, all cases), ``scores_by_group.png`` (per
    generator, organ and size bin) and ``cases_by_source.png`` (the cases with how many readers
    got each right); return the score table."""
    import json

    import pandas as pd

    study_dir = Path(study_dir)
    key_path, study_path = study_dir / "key.csv", study_dir / "study.json"
    for path, what in ((key_path, "answer key"), (study_path, "study description")):
        if not path.is_file():
            raise AnswerSheetError(f"{path}: {what} not found (is {study_dir} a reader-study folder?)")
    study = json.loads(study_path.read_text())
    key = pd.read_csv(key_path, dtype={"case_id": str, "truth": str, "size_bin": str})
    if not answer_paths:
        raise AnswerSheetError("no answer files given (--answers reader1.csv ...)")
    sheets = [read_answers(p, key, study["choices"], study.get("study_id")) for p in answer_paths]
    names = [name for name, _ in sheets]
    if len(set(names)) < len(names):
        raise AnswerSheetError(f"{', '.join(map(str, answer_paths))}: two sheets from the same reader {names}")
    chance = 1.0 / len(study["choices"])
    table, confusion = score_study(key, sheets, study["task"], chance, seed)
    answers = {name: sheet.set_index("case_id")["answer"] for name, sheet in sheets}
    out_dir = Path(out_dir or study_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "scores.csv", index=False)
    agr.agreement_table(answers, study["choices"]).to_csv(out_dir / "agreement.csv", index=False)
    confusion.to_csv(out_dir / "confusion.csv")
    write_figures(table, out_dir, study["task"], chance)
    write_gallery_figure(key, sheets, study_dir / "reader" / "cases", out_dir / "cases_by_source.png")
    return table


def write_gallery_figure(key: Any, sheets: Sequence[tuple[str, Any]], cases_dir: Path, path: Path) -> None:
    """Fig 9 style: the cases per source, small to large, with how many readers got each right
    (reports.reader_study.gallery.answers_figure); skipped when the case files are absent."""
    from reports.reader_study.gallery import answers_figure

    if not cases_dir.is_dir():
        return
    truth = key.set_index("case_id")["truth"]
    right: dict[str, tuple[int, int]] = {}
    for _, sheet in sheets:
        for case_id, answer in zip(sheet["case_id"], sheet["answer"]):
            if answer:
                ok, n = right.get(case_id, (0, 0))
                right[case_id] = (ok + int(answer == truth[case_id]), n + 1)
    answers_figure(key, right, cases_dir, path)


def write_figures(table: Any, out_dir: Path, task: str, chance: float) -> None:
    """Fig 8 style: every reader on all cases; Fig 9 style: pooled (or the one reader) by group."""
    from reports.realism_plots import plot_proportions

    overall = table[table["group"] == "all"]
    plot_proportions(overall, out_dir / "scores.png", f"Reader study ({task}): all cases", chance=chance)
    who = "pooled" if (table["reader"] == "pooled").any() else table["reader"].iloc[0]
    by_group = table[(table["reader"] == who) & (table["group"] != "all")].copy()
    if len(by_group):
        by_group["label"] = by_group["group"] + ": " + by_group["level"]
        plot_proportions(by_group, out_dir / "scores_by_group.png", f"Reader study ({task}): {who} by group",
                         group="label", chance=chance)
