"""Reader-study scoring per generator, organ and size bin; clustered CIs, tests, kappa, AUC."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from reports.reader_study import agreement as agr
from reports.reader_study.score import score_files

KEY = """case_id,truth,source,organ,size_bin,radius_mm
c1,real,real,liver,0-5,3.0
c2,real,real,liver,5-10,7.0
c3,real,real,kidney,0-5,4.0
c4,real,real,kidney,5-10,8.0
c5,synthetic,hu,liver,0-5,2.5
c6,synthetic,hu,kidney,5-10,6.0
c7,synthetic,gen_x,liver,5-10,9.0
c8,synthetic,gen_x,kidney,0-5,4.5
"""
# (answer, confidence) per case
ALICE = {"c1": ("real", 5), "c2": ("synthetic", 2), "c3": ("real", 4), "c4": ("real", 3),
         "c5": ("synthetic", 4), "c6": ("real", 1), "c7": ("synthetic", 5), "c8": ("synthetic", 3)}
BOB = {"c1": ("real", 3), "c2": ("real", 4), "c3": ("synthetic", 2), "c4": ("real", 5),
       "c5": ("real", 2), "c6": ("synthetic", 3), "c7": ("synthetic", 4), "c8": ("", "")}


def _study(tmp_path):
    from reports.reader_study.make import StudyCase, case_payload

    (tmp_path / "key.csv").write_text(KEY)
    (tmp_path / "reader/cases").mkdir(parents=True)
    for k in range(1, 9):  # blinded case files, as `make` writes them (the Fig 9 panel reads them)
        case = StudyCase(np.full((8, 8, 3), 10.0 * k, np.float32), (1.0, 1.0, 2.0), "", 1)
        (tmp_path / f"reader/cases/c{k}.js").write_text(f'TB_REGISTER("c{k}", {json.dumps(case_payload(case))});\n')
    (tmp_path / "study.json").write_text(json.dumps({"study_id": "s1", "task": "real-vs-synthetic",
                                                     "choices": ["real", "synthetic"]}))
    sheets = []
    for name, answers in (("alice", ALICE), ("bob", BOB)):
        rows = ["study_id,reader,case_id,answer,confidence"] + [f"s1,{name},{c},{a},{k}" for c, (a, k) in answers.items()]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
        sheets.append(tmp_path / f"{name}.csv")
    return score_files(tmp_path, sheets).set_index(["reader", "group", "level", "metric"])


def test_scores_per_generator_organ_and_size_bin_equal_hand_counts(tmp_path):
    t = _study(tmp_path)
    # alice correct: c1 c3 c4 c5 c7 c8 (wrong c2, c6)
    assert t.loc[("alice", "all", "all", "accuracy"), ["successes", "n"]].tolist() == [6, 8]
    # generator hu = real cases c1-c4 + c5, c6: alice right on c1 c3 c4 c5 -> 4/6; sensitivity 1/2
    assert t.loc[("alice", "generator", "hu", "accuracy"), ["successes", "n"]].tolist() == [4, 6]
    assert t.loc[("alice", "generator", "hu", "sensitivity"), "value"] == pytest.approx(0.5)
    assert t.loc[("alice", "generator", "gen_x", "sensitivity"), "value"] == 1.0
    # organ kidney = c3 c4 c6 c8: alice 3/4; bob c3 wrong, c4 right, c6 right, c8 missing -> 2/3
    assert t.loc[("alice", "organ", "kidney", "accuracy"), "value"] == pytest.approx(0.75)
    assert t.loc[("bob", "organ", "kidney", "accuracy"), ["successes", "n", "n_missing"]].tolist() == [2, 3, 1]
    # size bin 5-10 = c2 c4 c6 c7: alice c4 c7 -> 2/4; bob c2 c4 c6 c7 all right -> 4/4
    assert t.loc[("alice", "size_bin", "5-10", "accuracy"), "value"] == 0.5
    assert t.loc[("bob", "size_bin", "5-10", "accuracy"), "value"] == 1.0
    # pooled kidney: (3 + 2) / (4 + 3)
    assert t.loc[("pooled", "organ", "kidney", "accuracy"), "value"] == pytest.approx(5 / 7)
    # per reader: exact binomial test against chance 0.5
    assert t.loc[("alice", "all", "all", "accuracy"), "p_value"] == pytest.approx(binomtest(6, 8, 0.5).pvalue)
    assert (t.xs("accuracy", level="metric")["chance"] == 0.5).all()


def test_confidence_auc_matches_sklearn_and_pooled_ci_resamples_cases(tmp_path):
    from sklearn.metrics import roc_auc_score

    t = _study(tmp_path)
    truth = [0, 0, 0, 0, 1, 1, 1, 1]
    signed = [-5, 2, -4, -3, 4, -1, 5, 3]  # +confidence for "synthetic", -confidence for "real"
    alice = t.loc[("alice", "all", "all", "auc")]
    assert alice["value"] == pytest.approx(roc_auc_score(truth, signed)) and alice["ci_low"] < alice["value"] < alice["ci_high"]
    assert t.loc[("pooled", "all", "all", "auc"), "ci_low"] < t.loc[("pooled", "all", "all", "auc"), "value"]
    pooled = t.loc[("pooled", "all", "all", "accuracy")]
    assert pooled["ci_method"] == "case bootstrap" and pooled["ci_low"] < pooled["value"] < pooled["ci_high"]


def test_clustered_bootstrap_is_wider_than_treating_reads_as_independent():
    """10 readers all agree: 20 cases, 12 right for everyone. Reads are 200, but the information is
    20 cases: the case bootstrap CI must be about sqrt(10) wider than a 200-read binomial one."""
    num, den = np.r_[np.full(12, 10), np.zeros(8)], np.full(20, 10)
    row = agr.clustered_row(num, den, 0.5, np.random.default_rng(0))
    naive = agr.binomial_row(120, 200, 0.5)
    assert row["value"] == pytest.approx(0.6)
    width, naive_width = row["ci_high"] - row["ci_low"], naive["ci_high"] - naive["ci_low"]
    assert width > 2.5 * naive_width
    assert row["p_value"] == pytest.approx(binomtest(12, 20, 0.5).pvalue)  # sign test over cases


def test_kappa_on_known_tables():
    # Cohen: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> po 0.7, pe 0.5, kappa 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert agr.cohen_kappa(a, b) == pytest.approx(0.4)
    # Fleiss (1971) worked example: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert agr.fleiss_kappa(counts) == pytest.approx(0.2099, abs=1e-3)
    # perfect agreement
    assert agr.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)


def test_agreement_csv_has_pairwise_cohen_and_fleiss(tmp_path):
    _study(tmp_path)
    table = pd.read_csv(tmp_path / "agreement.csv")
    # alice vs bob on the 7 cases both answered: agree on c1 c4 c7 (3/7)
    both = [c for c in BOB if BOB[c][0]]
    expected = agr.cohen_kappa([ALICE[c][0] for c in both], [BOB[c][0] for c in both])
    assert table.loc[0, "statistic"] == "cohen_kappa" and table.loc[0, "n_cases"] == 7
    assert table.loc[0, "kappa"] == pytest.approx(expected)
    assert (tmp_path / "scores_by_group.png").stat().st_size > 1000
    assert (tmp_path / "cases_by_source.png").stat().st_size > 1000
