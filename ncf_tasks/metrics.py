"""Ranking metrics on a (users, candidates) score matrix whose column 0 is the held-out item.

Ties count against the held-out item: its rank is the number of candidates scoring at least as high.
A constant model therefore gets HR = 0 instead of a lucky hit, and an unknown item (scored -inf) is
ranked last. A hit at 0-based rank p contributes 1/log2(p + 2) to NDCG (the paper's definition).
"""

from __future__ import annotations

import torch


def held_out_rank(scores: torch.Tensor) -> torch.Tensor:
    """0-based rank of column 0 within each row, ties counted pessimistically."""
    return (scores[:, 1:] >= scores[:, :1]).sum(dim=1)


def hit_ndcg(ranks: torch.Tensor, k: int) -> tuple[float, float]:
    """HR@k and NDCG@k from 0-based ranks (means over users)."""
    if ranks.numel() == 0:
        return 0.0, 0.0
    hit = ranks < k
    ndcg = torch.where(hit, 1.0 / torch.log2(ranks.double() + 2.0), torch.zeros((), dtype=torch.float64))
    return float(hit.double().mean()), float(ndcg.mean())


@torch.no_grad()
def score_candidates(
    model: torch.nn.Module, users: torch.Tensor, candidates: torch.Tensor, chunk: int = 1 << 20
) -> torch.Tensor:
    """Model scores of (users, C) candidate items, ``chunk`` pairs at a time → (users, C) float32.

    Users are broadcast against their candidates, so each user's side of the model runs once."""
    n, c = candidates.shape
    out = torch.empty((n, c), dtype=torch.float32, device=candidates.device)
    step = max(1, chunk // max(c, 1))
    for s in range(0, n, step):
        out[s : s + step] = model(users[s : s + step, None], candidates[s : s + step]).float()
    return out


def evaluate_model(
    model: torch.nn.Module, users: torch.Tensor, candidates: torch.Tensor, k: int
) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    try:
        return hit_ndcg(held_out_rank(score_candidates(model, users, candidates)), k)
    finally:
        model.train(was_training)
