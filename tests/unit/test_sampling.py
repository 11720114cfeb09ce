"""Invariants of the negative samplers, checked on random sets (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncf_tasks.sampling import PositiveSet, eval_candidates, feasible, train_negatives


@st.composite
def interaction_sets(draw, max_users=30, max_items=60):
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(2, max_items))
    pairs = draw(
        st.sets(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), min_size=1, max_size=n_users * n_items
        )
    )
    users, items = zip(*sorted(pairs))
    mode = draw(st.sampled_from(["bytes", "bits", "sorted"]))  # every membership structure
    limits = {"bytes": {}, "bits": {"byte_map_limit": 0}, "sorted": {"byte_map_limit": 0, "dense_limit": 0}}[mode]
    pos = PositiveSet(torch.tensor(users), torch.tensor(items), n_users, n_items, **limits)
    return pos, set(pairs), n_users, n_items


@settings(max_examples=60, deadline=None)
@given(interaction_sets(), st.integers(1, 6), st.integers(0, 2**31))
def test_train_negatives_exact_and_k_per_positive(data, k, seed):
    pos, pairs, n_users, n_items = data
    users = torch.tensor([u for u, _ in sorted(pairs)])
    ok = feasible(pos, users, 1)
    users = users[ok]  # a user who interacted with every item has no negatives
    neg = train_negatives(pos, users, k, torch.Generator().manual_seed(seed))
    assert neg.shape == (users.numel(), k)
    assert all((u, i) not in pairs for u, row in zip(users.tolist(), neg.tolist()) for i in row)
    assert ((neg >= 0) & (neg < n_items)).all()
    again = train_negatives(pos, users, k, torch.Generator().manual_seed(seed))
    assert torch.equal(neg, again)  # deterministic under a seed


@settings(max_examples=60, deadline=None)
@given(interaction_sets(), st.integers(1, 20), st.integers(0, 2**31))
def test_eval_candidates_unique_and_never_history(data, n, seed):
    pos, pairs, n_users, n_items = data
    users = torch.arange(n_users)
    users = users[feasible(pos, users, n)]
    cand = eval_candidates(pos, users, n, torch.Generator().manual_seed(seed))
    assert cand.shape == (users.numel(), n)
    for u, row in zip(users.tolist(), cand.tolist()):
        assert len(set(row)) == n and not any((u, i) in pairs for i in row)
    assert torch.equal(cand, eval_candidates(pos, users, n, torch.Generator().manual_seed(seed)))


def test_feasible_counts_allowed_items():
    pos = PositiveSet(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 2, 0]), 2, 4)
    assert feasible(pos, torch.tensor([0, 1]), 2).tolist() == [False, True]


def test_negatives_are_uniform_over_allowed_items():
    # user 0 interacted with items 0..4 of 10: the other five must each get ~20% of draws
    pos = PositiveSet(torch.zeros(5, dtype=torch.long), torch.arange(5), 1, 10)
    neg = train_negatives(pos, torch.zeros(50_000, dtype=torch.long), 1, torch.Generator().manual_seed(0))
    freq = torch.bincount(neg.flatten(), minlength=10).float() / neg.numel()
    assert freq[:5].sum() == 0 and torch.allclose(freq[5:], torch.full((5,), 0.2), atol=0.01)
    cand = eval_candidates(pos, torch.zeros(20_000, dtype=torch.long), 2, torch.Generator().manual_seed(1))
    freq = torch.bincount(cand.flatten(), minlength=10).float() / cand.numel()
    assert torch.allclose(freq[5:], torch.full((5,), 0.2), atol=0.01)


def test_bitset_handles_the_sign_bit_of_a_word():
    # keys 63 and 127 are bit 63 (the int64 sign bit) of words 0 and 1
    pos = PositiveSet(torch.tensor([0, 1, 1]), torch.tensor([63, 63, 62]), 2, 64, byte_map_limit=0)
    assert pos.bits is not None
    q_u, q_i = torch.tensor([0, 0, 1, 1, 1]), torch.tensor([63, 62, 63, 62, 0])
    assert pos.contains(q_u, q_i).tolist() == [True, False, True, True, False]
    sorted_keys = PositiveSet(torch.tensor([0, 1, 1]), torch.tensor([63, 63, 62]), 2, 64, dense_limit=0)
    assert sorted_keys.contains(q_u, q_i).tolist() == [True, False, True, True, False]
