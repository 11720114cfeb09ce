"""EASE^R and popularity: the closed form against a numpy reference, a planted structure, a λ the test split
cannot move, the numpy serving twin, and the gate's choice of the published model."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncf_tasks import baselines
from ncf_tasks.baselines import (
    EASE,
    Popularity,
    csr,
    fit_ease,
    gram,
    gram_dense,
    lambda_grid,
    rows_times,
    solve,
    sparse_rows,
    walk_decades,
)
from ncf_tasks.config import Settings
from ncf_tasks.gate import choose, decide
from ncf_tasks.rundata import RunData
from ncf_tasks.serving import ServingModel, export


def _random_set(n_users=40, n_items=25, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, i = torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g)
    key = torch.unique(u * n_items + i)
    return key // n_items, key % n_items


@pytest.mark.parametrize("dense_from", [0, 10**6], ids=["gathered", "whole-rows"])
def test_closed_form_matches_a_numpy_reference_with_and_without_weights(dense_from, monkeypatch):
    """Both ways of scoring a candidate list (``DENSE_FROM``) against the dense numpy product."""
    monkeypatch.setattr(baselines, "DENSE_FROM", dense_from)
    u, i = _random_set()
    for w in (None, torch.rand(u.numel(), generator=torch.Generator().manual_seed(1)) + 0.5):
        rows = csr(u, i, 40, w)
        x = np.zeros((40, 25))
        x[u.numpy(), i.numpy()] = 1.0 if w is None else w.numpy()
        p = np.linalg.inv(x.T @ x + 7.0 * np.eye(25))
        ref = np.eye(25) - p / np.diag(p)
        np.fill_diagonal(ref, 0.0)
        b = solve(gram(*rows, 25), 7.0)
        np.testing.assert_allclose(b.numpy(), ref, atol=1e-5)
        model = EASE(b, *rows)
        full = x.astype(np.float32) @ ref.astype(np.float32)
        np.testing.assert_allclose(model.score_all(torch.arange(40), torch.arange(25)).numpy(), full, atol=1e-4)
        cands = torch.randint(0, 25, (40, 6), generator=torch.Generator().manual_seed(2))
        got = model(torch.arange(40)[:, None], cands).numpy()  # the sparse path: positives x candidates
        np.testing.assert_allclose(got, np.take_along_axis(full, cands.numpy(), 1), atol=1e-4)
        assert torch.allclose(model(torch.arange(40), cands[:, 0]), model(torch.arange(40)[:, None], cands)[:, 0])


def test_the_cpu_and_gpu_ways_of_the_sparse_products_agree():
    """``gram`` and ``rows_times`` take scipy's products on the CPU and torch's on a GPU (``gram_dense``,
    ``sparse_rows(...) @ b``): the same figures, with weights, users repeated and out of order, and empty rows."""
    u, i = _random_set(50, 30, 400, seed=4)
    w = torch.rand(u.numel(), generator=torch.Generator().manual_seed(5)) + 0.5
    rows = csr(u, i, 52, w)  # users 50 and 51 have no positives
    torch.testing.assert_close(gram(*rows, 30), gram_dense(*rows, 30))
    b = solve(gram(*rows, 30), 3.0)
    users = torch.tensor([51, 3, 3, 0, 49, 50, 7])
    torch.testing.assert_close(rows_times(*rows, users, b), sparse_rows(*rows, users, 30) @ b)


def test_recovers_a_planted_item_item_structure():
    """Items come in pairs (2j, 2j + 1) that users take together; a user holding one item of a pair gets the
    other as the top recommendation among all items it has not seen."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for user in range(200):
        for pair in rng.choice(15, 3, replace=False):
            users += [user, user]
            items += [2 * pair, 2 * pair + 1]
    u, i = torch.tensor(users), torch.tensor(items)
    rows = csr(u, i, 200)
    model = EASE(solve(gram(*rows, 30), 10.0), *rows)
    probe = csr(torch.tensor([0]), torch.tensor([8]), 1)  # a new user who took item 8 only
    scores = EASE(model.b, *probe).score_all(torch.tensor([0]), torch.arange(30))[0]
    scores[8] = float("-inf")
    assert int(scores.argmax()) == 9


def _run_data(seed=0) -> RunData:
    u, i = _random_set(60, 30, 700, seed)
    g = torch.Generator().manual_seed(seed)
    first = torch.ones(u.numel(), dtype=torch.bool)
    first[1:] = u[1:] != u[:-1]  # each user's first positive (sorted by user) is held out, twice over
    held = torch.nonzero(first).reshape(-1)
    last = torch.cat([held[1:] - 1, torch.tensor([u.numel() - 1])])  # each user's last positive: its test item
    keep = torch.ones(u.numel(), dtype=torch.bool)
    keep[held], keep[last] = False, False
    valid_u, valid_i = u[held], i[held]
    test_u, test_i = u[last], i[last]
    return RunData(
        manifest=None,
        n_users=60,
        n_items=30,
        train_users=u[keep],
        train_items=i[keep],
        valid_users=valid_u,
        valid_candidates=torch.cat([valid_i[:, None], torch.randint(0, 30, (valid_u.numel(), 9), generator=g)], 1),
        test_users=test_u,
        test_candidates=torch.cat([test_i[:, None], torch.randint(0, 30, (test_u.numel(), 9), generator=g)], 1),
    )


def test_lambda_is_chosen_without_reading_the_test_split():
    data = _run_data()
    model, info = fit_ease(data, 5, 1.0, 1000.0, refit=False, weights=lambda d: None)
    other = dataclasses.replace(
        data,
        test_users=data.test_users.flip(0),
        test_candidates=torch.randint(0, 30, data.test_candidates.shape, generator=torch.Generator().manual_seed(9)),
    )
    model2, info2 = fit_ease(other, 5, 1.0, 1000.0, refit=False, weights=lambda d: None)
    assert info["lambda"] == info2["lambda"] and info["tried"] == info2["tried"]
    assert torch.equal(model.b, model2.b)
    assert len(info["tried"]) >= 4 and info["validation"] in info["tried"]
    refit, info3 = fit_ease(data, 5, 1.0, 1000.0, refit=True, weights=lambda d: None)
    assert info3["lambda"] == info["lambda"]  # the refit repeats the chosen λ on train + validation
    assert refit.indices.numel() == data.train_users.numel() + data.valid_users.numel()


def test_lambda_grid_and_the_search_beyond_its_end():
    assert lambda_grid(1.0, 1000.0) == pytest.approx([1.0, 10.0, 100.0, 1000.0])
    data = _run_data(1)
    _, info = fit_ease(data, 5, 1e-3, 1e-2, refit=False, weights=lambda d: None)
    tried = [r["lambda"] for r in info["tried"]]
    assert max(tried) > 1e-2 or info["lambda"] < 1e-2  # an optimum at the upper end looks a decade further


@settings(max_examples=200, deadline=None)
@given(peak=st.floats(-5.0, 9.0), width=st.floats(0.2, 5.0))
def test_the_lambda_walk_finds_the_half_decade_nearest_a_single_peak(peak, width):
    """Validation HR against log λ rises then falls: for any such curve the walk returns the half-decade point
    nearest the peak within its reach (10⁻³ to 10^7.5 for the range [1, 10⁴]) and evaluates each λ once, in
    fewer evaluations than the decades from the start to the peak plus four."""
    calls: list[float] = []

    def evaluate(lam: float) -> tuple[float, float]:
        calls.append(lam)
        return -((np.log10(lam) - peak) ** 2) / width, lam

    got = walk_decades(evaluate, 1.0, 1e4)
    reach = np.arange(-3.5, 7.51, 0.5)
    assert abs(np.log10(got) - peak) <= np.abs(reach - peak).min() + 1e-9  # a tie goes to the larger λ
    assert np.min(np.abs(reach - np.log10(got))) < 1e-9
    assert len(calls) == len(set(calls))
    assert len(calls) <= np.ceil(abs(np.clip(peak, -3, 7) - 2)) + 4 + (abs(np.clip(peak, -3, 7) - 2) > 4.4)


def test_the_lambda_walk_prefers_the_stronger_prior_on_a_plateau():
    assert walk_decades(lambda lam: (0.5, lam), 1.0, 1e4) == pytest.approx(1e4 * 10**3.5)


def test_ease_and_popularity_serve_without_torch_as_torch_scores():
    u, i = _random_set()
    rows = csr(u, i, 40, torch.rand(u.numel()) + 0.5)
    for net, kind in ((EASE(solve(gram(*rows, 25), 3.0), *rows), "ease"), (Popularity.fit(i, 25), "popularity")):
        served = ServingModel(export(net.state_dict(), {"model": kind, "n_users": 40}), "mem://m.npz")
        assert (served.n_users, served.n_items) == (40, 25)
        ref = net.score_all(torch.arange(40), torch.arange(25)).numpy()
        np.testing.assert_allclose(served.scores(0, 40), ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(served.scores(7, 13), ref[7:13], rtol=1e-5, atol=1e-5)
        idx, _ = served.top_k(0, 40, 5, (u.numpy(), i.numpy()))
        seen = set(zip(u.tolist(), i.tolist()))
        assert not any((user, int(item)) in seen for user, row in enumerate(idx) for item in row)


def test_the_published_model_is_chosen_on_validation_and_judged_by_the_gate():
    s = Settings.from_env(env={}, gate_min_lift=0.02, gate_tolerance=0.01)
    val = {"gmf": 0.5, "mlp": 0.45, "neumf": 0.55, "ease": 0.6, "popularity": 0.4}
    assert choose(s, val) == "neumf"
    best = s.replace(publish_model="best")
    assert choose(best, val) == "ease"
    assert choose(best, {**val, "ease": None}) == "neumf"
    assert choose(best, {"neumf": 0.3, "gmf": 0.3, "popularity": 0.3}) == "neumf"  # a tie keeps NeuMF
    assert choose(best, {"neumf": 0.3, "gmf": 0.2, "popularity": 0.35}) == "popularity"

    def metrics(published, **hr):
        models = {m: {"hr@10": v, "val_hr": v} for m, v in hr.items()}
        return {"k": 10, "models": models, "published_model": published}

    d = decide(best, metrics("popularity", neumf=0.3, popularity=0.35))
    assert d["publish"] and d["model"] == "popularity" and any("no trained model beat it" in r for r in d["reasons"])
    d = decide(s, metrics("neumf", neumf=0.60, ease=0.65, popularity=0.4))
    assert d["publish"] and d["notices"] and "NeuMF trails EASE^R" in d["notices"][0]
    assert d["vs_baseline"]["baseline"] == "ease" and d["vs_baseline"]["margin"] == pytest.approx(-0.05)
    assert any("strongest simple baseline, EASE^R" in r for r in d["reasons"])
    d = decide(s, metrics("neumf", neumf=0.645, ease=0.65, popularity=0.4))
    assert not d["notices"]  # within gate_tolerance of EASE^R
    d = decide(s, metrics("neumf", neumf=0.5, popularity=0.49))
    assert not d["publish"] and d["vs_baseline"]["baseline"] == "popularity"
