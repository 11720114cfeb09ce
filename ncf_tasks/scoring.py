"""Full-catalogue scoring: users against every item, in bounded chunks, with excluded pairs masked.

Full-catalogue evaluation (the test item's rank among all items not seen before the test) and
publication on a GPU worker (every user's top-K unseen items; a CPU worker publishes with ``serving``'s
numpy twin of this, held to the same results by tests) walk users in chunks through ``masked_scores``, which
scores a chunk against all items (``score_all``), sets the excluded (user, item) pairs to -inf and
yields the chunk. A chunk holds at most ``chunk_cells`` floats of per-pair activations, sized by the
model's widest layer (``models.pair_width``), so memory is bounded whatever the catalogue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import torch

from ncf_tasks.models import pair_width
from ncf_tasks.serving import SCORE_CHUNK_CELLS

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0


@torch.no_grad()
def masked_scores(
    net: torch.nn.Module,
    users: torch.Tensor,
    n_items: int,
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    chunk_cells: int = SCORE_CHUNK_CELLS,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yields ``(start, end, scores)``: ``scores`` is (end - start, n_items) float32 for
    ``users[start:end]``, with every pair of ``exclude = (user_idx, item_idx)`` set to -inf.

    ``users`` must be sorted ascending (each chunk's excluded pairs are then one slice of the
    user-sorted exclusions). The yielded tensor is reused by nothing: callers may modify it.
    """
    device = users.device
    n = users.numel()
    if n and bool((users[1:] < users[:-1]).any()):
        raise ValueError("masked_scores: users must be sorted ascending")
    step = max(1, chunk_cells // (max(n_items, 1) * pair_width(net)))
    bounds: list[int] = []
    if exclude is not None and n:
        # once, in bulk: each excluded pair's row in ``users`` (pairs of other users dropped), sorted by
        # row, and each chunk's slice of them; a chunk then masks with one indexed write (at ML-1M size
        # a chunk holds ~17 users, so per-chunk work must stay at a couple of operations)
        order = torch.argsort(exclude[0], stable=True)
        ex_u, ex_i = exclude[0][order], exclude[1][order]
        pos = torch.searchsorted(users, ex_u)
        hit = (pos < n) & (users[pos.clamp(max=n - 1)] == ex_u)
        rows, cols = pos[hit], ex_i[hit]
        bounds = torch.searchsorted(rows, torch.arange(0, n + step, step, device=device)).tolist()
    all_items = torch.arange(n_items, device=device)
    t0 = last = time.perf_counter()
    for c, a in enumerate(range(0, n, step)):
        b = min(a + step, n)
        scores = net.score_all(users[a:b], all_items).float()
        if bounds and bounds[c + 1] > bounds[c]:
            lo, hi = bounds[c], bounds[c + 1]
            scores[rows[lo:hi] - a, cols[lo:hi]] = float("-inf")
        yield a, b, scores
        del scores  # before the next chunk is allocated: one chunk's scores alive at a time
        if time.perf_counter() - last > PROGRESS_EVERY_S:
            last = time.perf_counter()
            done = b / n
            log.info(
                "scored %d/%d users against %d items (%.0f%%), ETA %.0fs",
                b,
                n,
                n_items,
                100 * done,
                (last - t0) * (1 - done) / max(done, 1e-9),
            )


def top_k(
    net: torch.nn.Module,
    users: torch.Tensor,
    n_items: int,
    k: int,
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    chunk_cells: int = SCORE_CHUNK_CELLS,
    blocked: torch.Tensor | None = None,
    removed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(item_idx int32, score float32), each (len(users), min(k, n_items)), best first, on the CPU.

    Excluded items score -inf; a user with fewer than k allowed items gets -inf in the tail. ``blocked`` items
    score -inf for everyone, and ``removed`` (CPU, one per user) receives how many of a user's top-k slots
    they held before (``serving.displaced``, the numpy twin).
    Results go into arrays allocated once: per-chunk small tensors interleaved with the large
    activations fragmented the heap (RSS grew with the number of chunks: 7 GB at 100k x 20k).
    """
    k = min(k, n_items)
    out_i = torch.empty((users.numel(), k), dtype=torch.int32)
    out_s = torch.empty((users.numel(), k), dtype=torch.float32)
    block = blocked is not None and blocked.numel() > 0
    for a, b, scores in masked_scores(net, users, n_items, exclude, chunk_cells):
        if block:
            held = scores[:, blocked]
            scores[:, blocked] = float("-inf")
        vals, idx = scores.topk(k, dim=1)
        del scores
        out_i[a:b] = idx
        out_s[a:b] = vals
        if block and removed is not None:
            held = held.topk(min(k, held.shape[1]), dim=1).values
            merged = torch.cat([vals, held], 1)
            best, pick = merged.topk(k, dim=1)
            removed[a:b] = ((pick >= k) & torch.isfinite(best)).sum(1).cpu()
    return out_i, out_s
