"""The shipped lists' stability and concentration measures against hand-computed examples, and their gate rules."""

import numpy as np
import pytest

from ncf_tasks.beyond import gini, list_measures, novelty, overlap
from ncf_tasks.config import Settings
from ncf_tasks.gate import decide


def test_overlap_against_a_hand_computed_example():
    new = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, -1, -1]])
    old = np.array([[4, 3, 9, 9], [0, 10, 11, 12], [2, 1, 3, -1]])
    # user 0 keeps 3 and 4 (2 of 4), user 1 nothing, user 2 keeps 1 and 2 (2 of 4; its padding counts for nothing)
    mean, changed = overlap(new, old)
    assert mean == pytest.approx((0.5 + 0.0 + 0.5) / 3) and changed == pytest.approx(1 / 3)
    assert overlap(new[:0], old[:0]) == (0.0, 0.0)


def test_gini_and_novelty_against_hand_computed_examples():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n: one item of four takes every slot
    assert gini(np.array([1, 3])) == pytest.approx(0.25)  # (2*1-3)*1 + (2*2-3)*3 = 2, over 2 * 4
    assert gini(np.zeros(3)) == 0.0
    users_per_item = np.array([8, 4, 2, 1])  # of 8 users: p = 1, 1/2, 1/4, 1/8
    assert novelty(np.array([[0, 1], [2, 3]]), users_per_item, 8) == pytest.approx((0 + 1 + 2 + 3) / 4)
    assert novelty(np.array([[3, -1]]), users_per_item, 8) == pytest.approx(3.0)
    m = list_measures(np.array([[0, 1], [0, 2]]), 4, users_per_item, 8)
    assert m["coverage"] == 0.75 and m["gini"] == pytest.approx(gini(np.array([2, 1, 1, 0])))


def _metrics(**beyond):
    models = {"neumf": {"hr@10": 0.6}, "popularity": {"hr@10": 0.3}, "production": {"hr@10": 0.6}}
    return {"k": 10, "models": models, "beyond": beyond}


def test_stability_and_concentration_rules_block_with_a_reason_and_pass_when_off():
    s = Settings.from_env(env={})
    churn = _metrics(overlap=0.1, changed_all=0.8, gini=0.97, coverage=0.02)
    d = decide(s, churn)  # both rules off by default
    assert d["publish"] and not any("overlap@" in r or "Gini" in r for r in d["reasons"])
    d = decide(s.replace(gate_min_overlap=0.3), churn)
    assert not d["publish"] and any(
        "overlap@10 with production 0.100 < gate_min_overlap 0.3" in r and "80.0% of lists entirely" in r
        for r in d["reasons"]
    )
    d = decide(s.replace(gate_max_gini=0.9), churn)
    assert not d["publish"] and any("Gini of recommendations 0.970 > gate_max_gini 0.9" in r for r in d["reasons"])
    calm = _metrics(overlap=0.6, changed_all=0.0, gini=0.5, coverage=0.4)
    d = decide(s.replace(gate_min_overlap=0.3, gate_max_gini=0.9), calm)
    assert d["publish"] and sum("gate_min_overlap" in r or "gate_max_gini" in r for r in d["reasons"]) == 2
    first = _metrics(overlap=None, changed_all=None, gini=0.5, coverage=0.4)  # nothing in production yet
    assert decide(s.replace(gate_min_overlap=0.3), first)["publish"]
