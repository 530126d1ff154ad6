"""Visual Turing Test kit: blinded study files, key, scoring, gallery."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from reports.reader_study.make import StudyCase, axial_stack, write_study
from reports.reader_study.score import AnswerSheetError, score_files


def _cases(n_real=3, n_synth=3):
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n_real + n_synth):
        volume = rng.normal(50, 10, (12, 10, 6)).astype(np.float32)
        volume[0, 0, 0] = 1000 + i  # fingerprint to recognise the case after blinding
        truth = "real" if i < n_real else "synthetic"
        cases.append(StudyCase(volume, (2.0, 2.0, 3.0), truth, 3, {"source": "real" if i < n_real else "hu",
                                                                  "tumor_id": f"t{i}"}))
    return cases


def _load_case_js(path):
    text = path.read_text()
    payload = json.loads(re.match(r"TB_REGISTER\(\"[^\"]+\", (.*)\);\s*$", text, re.S).group(1))
    stack = np.frombuffer(base64.b64decode(payload["data"]), "<i2").reshape(payload["shape"])
    return payload, stack


def test_make_is_deterministic_and_the_key_matches_the_cases(tmp_path):
    cases = _cases()
    write_study(cases, tmp_path / "a", task="real-vs-synthetic", seed=7)
    write_study(cases, tmp_path / "b", task="real-vs-synthetic", seed=7)
    write_study(cases, tmp_path / "c", task="real-vs-synthetic", seed=8)
    key_a, key_b = pd.read_csv(tmp_path / "a/key.csv"), pd.read_csv(tmp_path / "b/key.csv")
    pd.testing.assert_frame_equal(key_a, key_b)
    # same seed, same cases, but a fresh study id (the page's localStorage key)
    ids = [json.loads((tmp_path / f"{d}/study.json").read_text())["study_id"] for d in "ab"]
    assert ids[0] != ids[1] and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert f'"study_id": "{ids[0]}"' in (tmp_path / "a/reader/index.html").read_text()
    assert (tmp_path / "a/reader/cases/case_001.js").read_text() == (tmp_path / "b/reader/cases/case_001.js").read_text()
    assert list(pd.read_csv(tmp_path / "c/key.csv").tumor_id) != list(key_a.tumor_id)  # another seed, another order
    for row in key_a.itertuples():
        payload, stack = _load_case_js(tmp_path / "a/reader/cases" / f"{row.case_id}.js")
        original = cases[int(row.tumor_id[1:])]
        assert row.truth == original.truth
        np.testing.assert_array_equal(stack, axial_stack(original.volume))
        assert payload["start"] == 3 and payload["shape"] == [6, 10, 12]
    # blinding: neither the page nor the case files mention the truth or the source
    page = (tmp_path / "a/reader/index.html").read_text()
    assert "key.csv" not in page and "synthetic\"" not in page.split("const CONFIG")[0]
    config = json.loads(re.search(r"const CONFIG = (\{.*?\});\n", page).group(1))
    assert config["cases"] == list(key_a.case_id) and "truth" not in json.dumps(config)
    assert not list((tmp_path / "a/reader").rglob("key*"))


def test_axial_stack_is_radiological_display_order():
    volume = np.zeros((4, 3, 2))
    volume[3, 0, 1] = 7  # patient-left (high x), posterior (low y), upper slice
    stack = axial_stack(volume)
    assert stack.shape == (2, 3, 4)
    # rows run anterior->posterior (y reversed), columns patient right->left (x reversed)
    assert stack[1, 2, 0] == 7


def _write_answers(path, reader, answers):
    rows = ["reader,case_id,answer,confidence,answered_at"]
    rows += [f"{reader},{case},{ans},3,2026-01-01T00:00:00Z" for case, ans in answers.items()]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_scoring_equals_hand_computed_values(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    # key written by hand: 3 real, 3 synthetic
    (study / "key.csv").write_text("case_id,truth\nc1,real\nc2,real\nc3,real\nc4,synthetic\nc5,synthetic\nc6,synthetic\n")
    (study / "study.json").write_text(json.dumps({"task": "real-vs-synthetic", "choices": ["real", "synthetic"]}))
    # reader A: c1 real(ok) c2 synthetic(wrong) c3 real(ok) c4 synthetic(ok) c5 real(wrong) c6 unanswered
    a = _write_answers(tmp_path / "a.csv", "alice", {"c1": "real", "c2": "synthetic", "c3": "real",
                                                     "c4": "synthetic", "c5": "real", "c6": ""})
    # reader B: all six right
    b = _write_answers(tmp_path / "b.csv", "bob", {f"c{i}": "real" if i <= 3 else "synthetic" for i in range(1, 7)})
    table = score_files(study, [a, b])
    table = table[table.group == "all"].set_index(["reader", "metric"])
    # A: 3 of 5 answered correct; synthetic found 1 of 2 answered; real called real 2 of 3
    assert table.loc[("alice", "accuracy"), ["successes", "n"]].tolist() == [3, 5]
    assert table.loc[("alice", "accuracy"), "value"] == pytest.approx(0.6)
    assert table.loc[("alice", "sensitivity"), "value"] == pytest.approx(0.5)
    assert table.loc[("alice", "specificity"), "value"] == pytest.approx(2 / 3)
    assert table.loc[("alice", "accuracy"), "n_missing"] == 1
    assert table.loc[("bob", "accuracy"), "value"] == 1.0
    # pooled: (3 + 6) / (5 + 6); sensitivity (1 + 3) / (2 + 3); specificity (2 + 3) / (3 + 3)
    assert table.loc[("pooled", "accuracy"), "value"] == pytest.approx(9 / 11)
    assert table.loc[("pooled", "sensitivity"), "value"] == pytest.approx(4 / 5)
    assert table.loc[("pooled", "specificity"), "value"] == pytest.approx(5 / 6)
    # Wilson interval for 3/5 by hand: centre (0.6 + 1.92/5)/(1 + 3.84/5) = 0.5565, half 0.3877
    assert table.loc[("alice", "accuracy"), ["ci_low", "ci_high"]].tolist() == pytest.approx([0.2307, 0.8824], abs=1e-3)
    assert (study / "scores.csv").is_file() and (study / "scores.png").stat().st_size > 1000
    confusion = pd.read_csv(study / "confusion.csv", index_col=0)
    assert confusion.loc["synthetic", "real"] == 1 and confusion.loc["real", "real"] == 5


def test_organ_task_scores_accuracy_and_confusion(tmp_path):
    (tmp_path / "key.csv").write_text("case_id,truth\nc1,liver\nc2,liver\nc3,kidney\nc4,pancreas\n")
    (tmp_path / "study.json").write_text(json.dumps({"task": "organ", "choices": ["liver", "pancreas", "kidney"]}))
    sheet = _write_answers(tmp_path / "r.csv", "r", {"c1": "liver", "c2": "kidney", "c3": "kidney", "c4": "liver"})
    table = score_files(tmp_path, [sheet]).set_index("metric")
    assert table.loc["accuracy", "value"] == 0.5 and np.allclose(table["chance"], 1 / 3)
    assert "auc" not in table.index
    from scipy.stats import binomtest

    assert table.loc["accuracy", "p_value"] == pytest.approx(binomtest(2, 4, 1 / 3).pvalue)  # vs 1/3, not 0.5
    assert table.loc["recall_liver", "value"] == 0.5 and table.loc["recall_pancreas", "value"] == 0.0
    confusion = pd.read_csv(tmp_path / "confusion.csv", index_col=0)
    assert confusion.loc["liver", "kidney"] == 1 and confusion.loc["pancreas", "liver"] == 1


def test_bad_answer_sheets_name_the_file(tmp_path):
    (tmp_path / "key.csv").write_text("case_id,truth\nc1,real\n")
    (tmp_path / "study.json").write_text(json.dumps({"task": "real-vs-synthetic", "choices": ["real", "synthetic"]}))
    bad = _write_answers(tmp_path / "bad.csv", "x", {"c1": "maybe"})
    with pytest.raises(AnswerSheetError, match="bad.csv.*maybe"):
        score_files(tmp_path, [bad])
    unknown = _write_answers(tmp_path / "unk.csv", "x", {"c9": "real"})
    with pytest.raises(AnswerSheetError, match="unk.csv.*c9"):
        score_files(tmp_path, [unknown])
    (tmp_path / "study.json").write_text(json.dumps({"study_id": "mine", "task": "real-vs-synthetic",
                                                     "choices": ["real", "synthetic"]}))
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("study_id,reader,case_id,answer,confidence\ntheirs,x,c1,real,2\n")
    with pytest.raises(AnswerSheetError, match="foreign.csv.*another study"):
        score_files(tmp_path, [foreign])
