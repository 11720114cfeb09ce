"""Recency weighting: each user's latest train positives weigh more in the loss (``fitting.recency_weights``)."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from ncf_tasks.build import build_training_set
from ncf_tasks.config import Settings
from ncf_tasks.fitting import (
    epoch_generator,
    fit,
    initial_state,
    make_optimizer,
    new_model,
    recency_weights,
    train_epoch,
)
from ncf_tasks.rundata import from_frames
from ncf_tasks.sampling import PositiveSet, train_negatives

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def frames(train_ts: list[tuple[int, int, int]]):
    """train (user, item, seconds after T0); one validation and test row for user 0 (negatives unused here)."""
    train = pl.DataFrame(
        {
            "user_idx": [u for u, _, _ in train_ts],
            "item_idx": [i for _, i, _ in train_ts],
            "event_ts": [T0 + dt.timedelta(seconds=s) for _, _, s in train_ts],
        },
        schema={"user_idx": pl.Int32, "item_idx": pl.Int32, "event_ts": pl.Datetime("us", "UTC")},
    )
    held = pl.DataFrame(
        {"user_idx": [0, 1], "item_idx": [9, 8], "negatives": [[1, 2], [3, 4]]},
        schema={"user_idx": pl.Int32, "item_idx": pl.Int32, "negatives": pl.Array(pl.Int32, 2)},
    )
    return train, held


def test_places_count_back_from_each_users_latest_and_ties_share_a_place():
    train, held = frames([(0, 1, 10), (0, 2, 30), (0, 3, 30), (0, 4, 5), (1, 5, 7), (1, 6, 1)])
    data = from_frames(None, 2, 10, train, held, held)
    assert data.train_recency.tolist() == [2, 0, 0, 3, 0, 1]
    # the refit's set: each validation item becomes its user's latest, the rest move one place back
    both = data.with_validation()
    assert both.train_items.tolist() == [1, 2, 3, 4, 5, 6, 9, 8]
    assert both.train_recency.tolist() == [3, 1, 1, 4, 1, 2, 0, 0]
    # a set without event times (benchmark tensors, older sets) trains unweighted
    assert from_frames(None, 2, 10, train.drop("event_ts"), held, held).train_recency is None


def test_weights_fall_with_the_place_halve_per_halflife_and_average_one():
    train, held = frames([(0, i, 100 - i) for i in range(8)])
    data = from_frames(None, 1, 10, train, held, held)
    s = Settings(recency_boost=4.0, recency_halflife=2.0)
    w = recency_weights(data, s)
    assert w.mean().item() == pytest.approx(1.0)
    assert torch.all(w[:-1] > w[1:])  # item 0 is the latest
    raw = 1 + 4.0 * 0.5 ** (torch.arange(8) / 2.0)
    assert torch.allclose(w, raw / raw.mean())
    assert recency_weights(data, s.replace(recency_boost=0.0)) is None


def test_the_weighted_loss_is_the_per_positive_weighted_log_loss():
    """One epoch at lr 0 reports the mean over samples of weight x log loss (a positive's negatives share
    its weight), and a boost of 0 is exactly the unweighted loop."""
    train, held = frames([(0, 1, 10), (0, 2, 30), (0, 3, 20), (1, 5, 7), (1, 6, 1)])
    data = from_frames(None, 2, 10, train, held, held)
    pos = PositiveSet(*data.all_positives(), 2, 10)
    s = Settings(
        factors=4, lr=0.0, l2=0.0, train_negatives=2, batch_size=3 * 5, recency_boost=4.0, recency_halflife=1.0
    )
    torch.manual_seed(0)
    net = new_model("gmf", 2, 10, s)
    with torch.no_grad():
        for p in net.parameters():  # logits far from 0, so that weighting changes the loss
            p.normal_(std=1.0)
    losses = {}
    for boost in (4.0, 0.0):
        t = s.replace(recency_boost=boost)
        gen = epoch_generator(t, 1, torch.device("cpu"))
        losses[boost], _ = train_epoch(net, make_optimizer("gmf", net, t), data, pos, t, gen, torch.device("cpu"))
    # the same epoch by hand: the permutation and negatives drawn from the same stream
    gen = epoch_generator(s, 1, torch.device("cpu"))
    perm = torch.randperm(5, generator=gen)
    neg = train_negatives(pos, data.train_users[perm], 2, gen)
    items = torch.cat([data.train_items[perm, None], neg], dim=1)
    with torch.no_grad():
        logits = net(data.train_users[perm, None], items)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    w = recency_weights(data, s)[perm, None]
    assert losses[4.0] == pytest.approx(float((w * bce).mean()), rel=1e-5)
    assert losses[0.0] == pytest.approx(float(bce.mean()), rel=1e-5)
    assert losses[4.0] != pytest.approx(losses[0.0], rel=1e-3)


def drifting_events(n_users: int = 150, seed: int = 0) -> pl.DataFrame:
    """Every user's taste moves: 20 items of one group of 50 long ago, then 5 of another group lately (the last
    two become validation and test). A model that weighs all history alike ranks the old group first."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        old, new = rng.choice(4, 2, replace=False)
        for place, item in enumerate(
            list(old * 50 + rng.choice(50, 20, replace=False)) + list(new * 50 + rng.choice(50, 5, replace=False))
        ):
            rows.append((f"u{u}", f"i{item}", T0 + dt.timedelta(days=place)))
    return pl.DataFrame(
        rows, schema={"user_id": pl.String, "item_id": pl.String, "event_ts": pl.Datetime("us", "UTC")}, orient="row"
    )


def test_recency_weighting_follows_a_drifting_taste():
    """On planted drift, a strong boost raises validation HR@10 (the held-out item is from the user's recent group):
    never lower on any of three drawn sets, and by more than 0.03 on average (0.1, 0.02, 0.08 when written)."""
    torch.set_num_threads(1)
    gains = []
    for seed in range(3):
        base = Settings(
            eval_negatives=30,
            factors=8,
            epochs=20,
            patience=20,
            lr=0.03,
            l2=0.0,
            batch_size=256,
            min_user_interactions=3,
            min_item_interactions=1,
            seed=seed,
        )
        ts = build_training_set(drifting_events(seed=seed), base)
        data = from_frames(None, ts.users.height, ts.items.height, ts.train, ts.valid, ts.test)
        pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items)
        best = {}
        for boost in (0.0, 30.0):
            s = base.replace(recency_boost=boost, recency_halflife=2.0)
            torch.manual_seed(s.seed)
            net = new_model("gmf", data.n_users, data.n_items, s)
            state = fit(
                "gmf",
                net,
                make_optimizer("gmf", net, s),
                data,
                pos,
                s,
                torch.device("cpu"),
                initial_state(net, data, s.eval_k, "gmf"),
            )
            best[boost] = state["best_hr"]
        gains.append(best[30.0] - best[0.0])
    assert min(gains) >= 0 and sum(gains) / 3 > 0.03, gains
