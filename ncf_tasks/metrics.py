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
def score_candidates(model: torch.nn.Module, users: torch.Tensor, candidates: torch.Tensor,
                     chunk: int = 1 << 20) -> torch.Tensor:
    """Model scores of (users, C) candidate items in a few large batches → (users, C) float32."""
    n, c = candidates.shape
    flat_u = users[:, None].expand(n, c).reshape(-1)
    flat_i = candidates.reshape(-1)
    out = torch.empty(flat_i.numel(), dtype=torch.float32, device=candidates.device)
    for s in range(0, flat_i.numel(), chunk):
        out[s:s + chunk] = model(flat_u[s:s + chunk], flat_i[s:s + chunk]).float()
    return out.view(n, c)


def evaluate_model(model: torch.nn.Module, users: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    try:
        return hit_ndcg(held_out_rank(score_candidates(model, users, candidates)), k)
    finally:
        model.train(was_training)
