"""Beyond accuracy: how the shipped lists change from day to day and how concentrated they are.

A model may keep its HR@K while swapping every user's list every night or sending everyone to the same few
items; the consumers (an e-mail job, a home page) feel both. Per run, on the published model's top-K lists of
every evaluated user (``evaluate``):

* ``overlap``: mean |L_new ∩ L_prod| / K over users who have a list in both this run and the table in production
  (matched by string id), and ``changed_all``: the share of them whose list shares no item. None when nothing
  is in production yet.
* ``coverage``: the share of the catalogue in at least one list; ``gini``: the Gini index of how often each item
  is recommended (0 = every item equally, 1 = one item takes every slot); ``novelty``: the mean self-information
  −log2(share of users who interacted with the item) of recommended items (higher: less obvious items).
* ``fallback_share``: the share of the data day's active users that the table has no list for (new users,
  users under ``min_user_interactions``), who are served the fallback list. None when the day is not in the lake.

Pure functions on numpy arrays, checked against hand-computed examples in the tests.
"""

from __future__ import annotations

import numpy as np


def overlap(new: np.ndarray, old: np.ndarray) -> tuple[float, float]:
    """(mean overlap@K, share of lists changed completely) of row-aligned lists ``new`` and ``old`` (users × K
    item indices, -1 padding a short list): the overlap counts items in both, over K."""
    if new.shape[0] == 0:
        return 0.0, 0.0
    k = new.shape[1]
    both = (new[:, :, None] == old[:, None, :]) & (new[:, :, None] >= 0)
    shared = both.any(axis=2).sum(axis=1)
    return float((shared / k).mean()), float((shared == 0).mean())


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0: equal; → 1: one item holds everything)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


def novelty(lists: np.ndarray, interacted_users: np.ndarray, n_users: int) -> float:
    """Mean −log2(p_i) over the recommended items of ``lists`` (users × K, -1 padding), with p_i the share of
    the ``n_users`` users who interacted with item i (``interacted_users[i]``; floored at one user)."""
    items = lists[lists >= 0]
    if items.size == 0:
        return 0.0
    p = np.maximum(interacted_users[items], 1) / max(n_users, 1)
    return float(-np.log2(p).mean())


def list_measures(lists: np.ndarray, n_items: int, interacted_users: np.ndarray, n_users: int) -> dict:
    """Coverage, Gini and novelty of a table's lists (users × K item indices, -1 padding)."""
    counts = np.bincount(lists[lists >= 0], minlength=n_items)
    return {
        "coverage": float((counts > 0).mean()) if n_items else 0.0,
        "gini": gini(counts),
        "novelty": novelty(lists, interacted_users, n_users),
    }
