"""Score reader answers of a Visual Turing Test against its key.

Real-vs-synthetic task: "positive" = synthetic. Sensitivity = synthetic cases the reader called
synthetic; specificity = real cases called real; accuracy over all answered cases. A reader who
cannot tell real from synthetic scores about 0.5 accuracy. Organ task: accuracy and a confusion
matrix. Every proportion comes with a Wilson 95% interval. Unanswered cases are left out of the
denominators and counted in ``n_missing``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from reports.realism_stats import wilson_interval

ANSWER_COLUMNS = ("case_id", "answer")


class AnswerSheetError(ValueError):
    """An answer file or key does not match the study; the message names the file."""


def read_answers(path: str | Path, key: Any, choices: Sequence[str]) -> tuple[str, Any]:
    """(reader name, DataFrame case_id/answer/confidence) of one exported answer CSV."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise AnswerSheetError(f"{path}: answer file not found")
    try:
        sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise AnswerSheetError(f"{path}: not a CSV file ({exc})") from exc
    missing = [c for c in ANSWER_COLUMNS if c not in sheet.columns]
    if missing:
        raise AnswerSheetError(f"{path}: columns {missing} missing (expected reader,case_id,answer,confidence)")
    unknown = sorted(set(sheet["case_id"]) - set(key["case_id"]))
    if unknown:
        raise AnswerSheetError(f"{path}: case ids {unknown[:5]} are not in this study's key.csv")
    sheet["answer"] = sheet["answer"].str.strip().str.lower()
    bad = sorted(set(sheet["answer"]) - set(choices) - {""})
    if bad:
        raise AnswerSheetError(f"{path}: answers {bad} not allowed (expected one of {list(choices)} or empty)")
    names = [n for n in sheet.get("reader", pd.Series(dtype=str)).unique() if n]
    reader = names[0] if len(names) == 1 else path.stem
    return reader, sheet.drop_duplicates("case_id", keep="last")


def _proportion(reader: str, metric: str, successes: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, n)
    return {"reader": reader, "metric": metric, "value": successes / n if n else float("nan"),
            "successes": successes, "n": n, "ci_low": low, "ci_high": high}


def score_sheet(reader: str, merged: Any, task: str, n_cases: int) -> list[dict[str, Any]]:
    """Rows of the score table for one reader (``merged`` has truth and answer per case)."""
    answered = merged[merged["answer"] != ""]
    correct = answered["truth"] == answered["answer"]
    rows = [_proportion(reader, "accuracy", int(correct.sum()), len(answered))]
    if task == "real-vs-synthetic":
        synth = answered["truth"] == "synthetic"
        rows.append(_proportion(reader, "sensitivity", int((correct & synth).sum()), int(synth.sum())))
        rows.append(_proportion(reader, "specificity", int((correct & ~synth).sum()), int((~synth).sum())))
    else:
        for organ in sorted(set(answered["truth"])):
            is_organ = answered["truth"] == organ
            rows.append(_proportion(reader, f"recall_{organ}", int((correct & is_organ).sum()), int(is_organ.sum())))
    for row in rows:
        row["n_missing"] = n_cases - len(answered)
    return rows


def score_study(key: Any, sheets: Sequence[tuple[str, Any]], task: str) -> tuple[Any, Any]:
    """Score table (per reader and ``pooled``) and pooled confusion matrix (truth x answer).

    Args:
        key: DataFrame with ``case_id, truth``.
        sheets: (reader, answers DataFrame) pairs from :func:`read_answers`.
        task: ``real-vs-synthetic`` or ``organ``.
    """
    import pandas as pd

    merged_all, rows = [], []
    for reader, sheet in sheets:
        merged = key[["case_id", "truth"]].merge(sheet[["case_id", "answer"]], on="case_id", how="left")
        merged["answer"] = merged["answer"].fillna("")
        rows += score_sheet(reader, merged, task, len(key))
        merged_all.append(merged)
    pooled = pd.concat(merged_all, ignore_index=True)
    if len(sheets) > 1:
        rows += score_sheet("pooled", pooled, task, len(pooled))
    answered = pooled[pooled["answer"] != ""]
    confusion = pd.crosstab(answered["truth"], answered["answer"]).rename_axis(index="truth", columns="answer")
    return pd.DataFrame(rows), confusion


def score_files(study_dir: str | Path, answer_paths: Sequence[str | Path], out_dir: str | Path | None = None) -> Any:
    """Read ``study_dir``'s key and the answer CSVs, write ``scores.csv``, ``confusion.csv`` and
    ``scores.png`` into ``out_dir`` (default ``study_dir``), return the score table."""
    import json

    import pandas as pd

    from reports.realism_plots import plot_proportions

    study_dir = Path(study_dir)
    key_path, study_path = study_dir / "key.csv", study_dir / "study.json"
    for path, what in ((key_path, "answer key"), (study_path, "study description")):
        if not path.is_file():
            raise AnswerSheetError(f"{path}: {what} not found (is {study_dir} a reader-study folder?)")
    study = json.loads(study_path.read_text())
    key = pd.read_csv(key_path, dtype={"case_id": str, "truth": str})
    if not answer_paths:
        raise AnswerSheetError("no answer files given (--answers reader1.csv ...)")
    sheets = [read_answers(p, key, study["choices"]) for p in answer_paths]
    table, confusion = score_study(key, sheets, study["task"])
    out_dir = Path(out_dir or study_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "scores.csv", index=False)
    confusion.to_csv(out_dir / "confusion.csv")
    plot_proportions(table, out_dir / "scores.png", f"Reader study ({study['task']})")
    return table
