"""The simple models NeuMF must beat, as torch modules that score like the neural ones: item popularity and
EASE^R (Steck, WWW 2019), the closed-form item-item model that matched or beat NeuMF on the NCF paper's own
split once both were tuned on validation (Dacrema et al., TOIS 2021).

EASE^R: with X the users × items matrix of positives and G = XᵀX, P = (G + λI)⁻¹ and
B = I − P·diag(1/diag P) (so diag B = 0: an item never explains itself). A user's scores are x_u·B.

Both modules hold what they score from: EASE^R its B and the positives it was fit on (as CSR arrays: a
user's row of X), popularity its item counts. So ``forward(users, items)`` and ``score_all(users, items)``
work as GMF's do, and evaluation, full-catalogue ranking, the production re-score and publish need no
special case. Fitting happens in bulk: the Gram matrix as one sparse product XᵀX, one Cholesky
factorisation and inverse per λ (float32 while searching, float64 for the model kept: at 3,706 items 0.9 s
and 2.1 s on 2 cores, where an eigendecomposition shared by every λ took 13.6 s), λ found by a walk over
decades (``walk_decades``), validation candidates taken from the whole rows x_u·B (lists of at least
n_items / ``DENSE_FROM``; shorter ones gathered). On the CPU both sparse products are scipy's, a thread per
block (they release the GIL); on a GPU torch's (``gram``, ``rows_times``).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from ncf_tasks.metrics import hit_ndcg

log = logging.getLogger(__name__)
EXTEND_DECADES = 3
BLOCK_CELLS = 1 << 24  # floats of one dense block of X (users × items) while building G or scoring
# A candidate list of at least n_items / DENSE_FROM items is taken from the whole rows x_u·B (a CSR product),
# a shorter one gathered (positives × candidates). One gathered read costs ~100 multiply-adds of scipy's
# product: at 3,706 items on 2 cores, 100 candidates of 6,033 users (681k positives) took 2.6–2.8 s gathered
# and 0.9 s from whole rows; a user's one item (the production re-score) stays gathered
DENSE_FROM = 100


def csr(users: torch.Tensor, items: torch.Tensor, n_users: int, weights: torch.Tensor | None = None):
    """(indptr, indices, values): each user's positives, sorted by user, as CSR arrays (values 1 or ``weights``)."""
    order = torch.argsort(users, stable=True)
    indptr = torch.zeros(n_users + 1, dtype=torch.int64, device=users.device)
    indptr[1:] = torch.cumsum(torch.bincount(users, minlength=n_users), 0)
    values = torch.ones(users.numel(), device=users.device) if weights is None else weights.float()
    return indptr, items[order].to(torch.int64), values[order]


def positions(indptr: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in ``users``, position in the CSR arrays) of every positive of ``users``, in bulk."""
    starts, lens = indptr[users], indptr[users + 1] - indptr[users]
    rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), lens)
    first = torch.repeat_interleave(starts - (torch.cumsum(lens, 0) - lens), lens)
    return rows, first + torch.arange(rows.numel(), device=users.device)


def dense_rows(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, users: torch.Tensor, n_items: int):
    """The dense rows of X for ``users`` (any order, repeats allowed): (len(users), n_items) float32."""
    rows, at = positions(indptr, users)
    out = torch.zeros((users.numel(), n_items), device=users.device)
    out.index_put_((rows, indices[at]), values[at], accumulate=True)
    return out


def sparse_rows(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, users: torch.Tensor, n_items: int):
    """The rows of X for ``users`` (any order, repeats allowed) as a sparse CSR tensor: ``sparse_rows(...) @ B``
    is x_u·B for each of them in one multithreaded product."""
    _, at = positions(indptr, users)
    crow = torch.zeros(users.numel() + 1, dtype=torch.int64, device=users.device)
    crow[1:] = torch.cumsum(indptr[users + 1] - indptr[users], 0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": its product with a dense matrix is not
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            crow, indices[at], values[at], size=(users.numel(), n_items), check_invariants=False
        )


def _blocks(n: int, cells_per_row: int) -> list[tuple[int, int]]:
    """[start, stop) ranges over ``n`` rows: at most ``BLOCK_CELLS`` dense cells each, and at least one per
    thread torch may use (the scipy products run a block per thread)."""
    step = max(1, min(BLOCK_CELLS // max(cells_per_row, 1), -(-n // torch.get_num_threads())))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _scipy_csr(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, n_cols: int, dtype=np.float32):
    import scipy.sparse

    data = values.numpy().astype(dtype, copy=False)
    return scipy.sparse.csr_matrix((data, indices.numpy(), indptr.numpy()), shape=(indptr.numel() - 1, n_cols))


def rows_times(
    indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, users: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """X[users]·b as dense float32 (len(users), b.shape[1]); ``users`` in any order, repeats allowed.

    On the CPU scipy's CSR product, a block of users per thread: 0.9 s for 6,033 users against B at 3,706
    items on 2 cores, where torch's sparse CSR product took 1.8–2.0 s and its dense one 1.7–1.9 s. On a GPU,
    torch's CSR product."""
    if b.device.type != "cpu":
        return sparse_rows(indptr, indices, values, users, b.shape[0]) @ b
    x = _scipy_csr(indptr, indices, values, b.shape[0])[users.numpy()]
    bn, out = b.numpy(), np.empty((users.numel(), b.shape[1]), np.float32)

    def block(r: tuple[int, int]) -> None:
        out[r[0] : r[1]] = x[r[0] : r[1]] @ bn

    with ThreadPoolExecutor(torch.get_num_threads()) as pool:
        list(pool.map(block, _blocks(users.numel(), b.shape[1])))
    return torch.from_numpy(out)


class EASE(nn.Module):
    """EASE^R's B with the positives it was fit on; logits-free scores x_u·B (only their order matters)."""

    def __init__(self, b: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.register_buffer("b", b)
        self.register_buffer("indptr", indptr)
        self.register_buffer("indices", indices)
        self.register_buffer("values", values)

    @property
    def n_users(self) -> int:
        return self.indptr.numel() - 1

    @property
    def n_items(self) -> int:
        return self.b.shape[0]

    def _score_rows(self, users: torch.Tensor, cols: torch.Tensor | None) -> torch.Tensor:
        """x_u·B[:, cols] for ``users`` (1-D)."""
        return rows_times(self.indptr, self.indices, self.values, users, self.b if cols is None else self.b[:, cols])

    def forward(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        """Users (m, 1) against items (m, c) → (m, c), as the neural models broadcast; users (m,) with items
        (m,) → (m,). A long candidate list (``DENSE_FROM``) is gathered from the whole rows x_u·B (one sparse
        product per block of users); a short one sparsely: each of a user's positives j adds w_j·B[j, items], so
        it costs (positives × c) reads instead of a row times B."""
        flat = items.dim() == 1
        u, its = users.reshape(-1), items[:, None] if flat else items
        c = its.shape[1]
        if c * DENSE_FROM >= self.n_items:
            out = torch.empty(its.shape, device=its.device)
            step = max(1, BLOCK_CELLS // max(self.n_items, 1))
            for s in range(0, u.numel(), step):
                out[s : s + step] = torch.gather(self._score_rows(u[s : s + step], None), 1, its[s : s + step])
            return out[:, 0] if flat else out
        rows, at = positions(self.indptr, u)
        out = torch.zeros(its.shape, device=its.device)
        step = max(1, BLOCK_CELLS // max(c, 1))
        for s in range(0, rows.numel(), step):
            r, j = rows[s : s + step], at[s : s + step]
            out.index_add_(0, r, self.values[j, None] * self.b[self.indices[j, None], its[r]])
        return out[:, 0] if flat else out

    def score_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._score_rows(users, items)

    @classmethod
    def from_state(cls, state: dict) -> EASE:
        return cls(state["b"], state["indptr"], state["indices"], state["values"])


class Popularity(nn.Module):
    """Item popularity: every user gets the items' counts as scores."""

    def __init__(self, counts: torch.Tensor):
        super().__init__()
        self.register_buffer("counts", counts.float())

    def forward(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        return self.counts[items]

    def score_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts[items][None, :].expand(users.numel(), -1).clone()

    @classmethod
    def from_state(cls, state: dict) -> Popularity:
        return cls(state["counts"])

    @classmethod
    def fit(cls, items: torch.Tensor, n_items: int, weights: torch.Tensor | None = None) -> Popularity:
        return cls(torch.bincount(items, weights=None if weights is None else weights.double(), minlength=n_items))


def gram(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, n_items: int) -> torch.Tensor:
    """G = XᵀX in float64 (for the solve). On the CPU one sparse product (scipy's, a block of items per thread:
    0.5–0.6 s at ML-1M size on 2 cores, where dense blocks of users took 2.5 s: X is ~3% full); on a GPU
    accumulated over dense blocks of users, one product per block (``gram_dense``)."""
    if indptr.device.type != "cpu":
        return gram_dense(indptr, indices, values, n_items)
    x = _scipy_csr(indptr, indices, values, n_items, np.float64)
    xt, g = x.T.tocsr(), np.empty((n_items, n_items))

    def block(r: tuple[int, int]) -> None:
        g[r[0] : r[1]] = (xt[r[0] : r[1]] @ x).toarray()

    with ThreadPoolExecutor(torch.get_num_threads()) as pool:
        list(pool.map(block, _blocks(n_items, n_items)))
    return torch.from_numpy(g)


def gram_dense(indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, n_items: int) -> torch.Tensor:
    """G = XᵀX in float64, accumulated over dense blocks of users (``gram``'s way on a GPU)."""
    n_users = indptr.numel() - 1
    g = torch.zeros((n_items, n_items), dtype=torch.float64, device=indptr.device)
    for s, e in _blocks(n_users, n_items):
        x = dense_rows(indptr, indices, values, torch.arange(s, e, device=indptr.device), n_items)
        g += (x.T @ x).double()
    return g


def solve(g: torch.Tensor, lam: float) -> torch.Tensor:
    """B for one λ: P = (G + λI)⁻¹ by Cholesky, B = I − P·diag(1/diag P), as float32. The solve runs in
    ``g``'s precision (the λ search passes float32, about twice as fast); a float32 factorisation that fails
    (G + λI not positive definite to float32 precision: a tiny λ) is done again in float64."""
    a = g.clone()
    a.diagonal().add_(lam)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) and a.dtype != torch.float64:
        return solve(g.double(), lam)
    if int(info):
        raise ValueError(f"EASE^R: G + {lam:g}·I is not positive definite (lambda too small)")
    p = torch.cholesky_inverse(chol)
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b.float()


def lambda_grid(lo: float, hi: float) -> list[float]:
    """Decades from ``lo`` to ``hi`` (inclusive, log-spaced): the coarse pass of the λ search."""
    n = max(1, round(math.log10(hi / lo)))
    return [lo * (hi / lo) ** (j / n) for j in range(n + 1)] if hi > lo else [lo]


def walk_decades(evaluate: Callable[[float], tuple], lo: float, hi: float) -> float:
    """The λ a walk over decades finds, with ``evaluate(λ)`` a sort key (larger is better; called once per λ):
    the decade in the middle of [lo, hi] and the one above; then a decade at a time toward the better side
    (down when up did not help) while that improves, past an end of [lo, hi] by at most ``EXTEND_DECADES``
    (the right strength varies by orders of magnitude with the data's density); then half a decade between
    the best and its better neighbour (and outward too, where the walk stopped at its reach).

    Why a walk and not the whole grid: validation HR against log λ rises then falls (too little shrinkage
    fits co-occurrence noise, too much turns EASE^R into popularity), so the walk reaches the grid's best in
    4–5 evaluations where the grid and both half-decades took 7–8, and each costs a solve and a scoring of
    every validation candidate (~4 s at 3,706 items on 2 cores)."""
    grid = lambda_grid(lo, hi)
    start = grid[len(grid) // 2]
    reach = (  # in decades from the start
        math.floor(math.log10(lo / start) + 1e-9) - EXTEND_DECADES,
        math.ceil(math.log10(hi / start) - 1e-9) + EXTEND_DECADES,
    )
    keys: dict[float, tuple] = {}  # by decades from the start (halves too): no λ is reached twice by rounding

    def score(e: float) -> None:
        if e not in keys and reach[0] - 0.5 <= e <= reach[1] + 0.5:
            keys[e] = evaluate(start * 10.0**e)

    def best() -> float:
        return max(keys, key=lambda e: keys[e])

    for e in (0, 1):  # the start and a decade above; the loop then goes down if up did not help
        score(e)
    while True:  # on toward the better side while that improves
        top = best()
        step = 1 if top == max(keys) else -1 if top == min(keys) else 0
        if not step or not reach[0] <= top + step <= reach[1]:
            break
        score(top + step)
        if best() == top:
            break
    top = best()
    beside = max((e for e in (top - 1, top + 1) if e in keys), key=lambda e: keys[e])
    score((top + beside) / 2)
    if top in (min(keys), max(keys)):  # the walk stopped at its reach: half a decade outward too
        score(top + (0.5 if top == max(keys) else -0.5))
    return start * 10.0 ** best()


def select_lambda(
    g: torch.Tensor,
    fit_rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    users: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    lo: float,
    hi: float,
) -> tuple[float, list[dict]]:
    """The λ with the best validation HR@k (then NDCG@k, then the larger λ: the stronger prior on a tie) that
    ``walk_decades`` finds over [lo, hi], with float32 solves (the final model's is float64: ``fit_ease``).
    Reads only the fit rows and the validation candidates given: the test split cannot change the choice.
    Returns (λ, one row per λ tried)."""
    from ncf_tasks.metrics import held_out_rank

    tried: dict[float, dict] = {}
    g32 = g.float()

    def evaluate(lam: float) -> tuple[float, float, float]:
        t = time.perf_counter()
        model = EASE(solve(g32, lam), *fit_rows)
        hr, ndcg = hit_ndcg(held_out_rank(model(users[:, None], candidates)), k)
        tried[lam] = {"lambda": lam, f"val_hr@{k}": round(hr, 5), f"val_ndcg@{k}": round(ndcg, 5)}
        log.info(
            "ease: λ %.4g: validation HR@%d %.4f NDCG@%d %.4f (%.1fs)", lam, k, hr, k, ndcg, time.perf_counter() - t
        )
        return tried[lam][f"val_hr@{k}"], tried[lam][f"val_ndcg@{k}"], lam

    lam = walk_decades(evaluate, lo, hi)
    return lam, [tried[x] for x in sorted(tried)]


def fit_ease(data, k: int, lo: float, hi: float, refit: bool, weights) -> tuple[EASE, dict]:
    """EASE^R of a run (``data``: a ``RunData``): λ chosen on the validation candidates with the model fit on
    train positives, then (``refit``) fit again with that λ on train + validation positives, as the neural
    models are. ``weights(data)``: each positive's weight in X (the recency weights, or None).
    Returns the model and a record of the search (λ, every λ tried, seconds)."""
    t0 = time.perf_counter()
    rows = csr(data.train_users, data.train_items, data.n_users, weights(data))
    g = gram(*rows, data.n_items)
    log.info(
        "ease: Gram matrix of %d items from %d positives (%.1fs)",
        data.n_items,
        rows[1].numel(),
        time.perf_counter() - t0,
    )
    lam, tried = select_lambda(g, rows, data.valid_users, data.valid_candidates, k, lo, hi)
    chosen = next(r for r in tried if r["lambda"] == lam)
    if refit:
        full = data.with_validation()
        rows = csr(full.train_users, full.train_items, full.n_users, weights(full))
        g = gram(*rows, data.n_items)
    model = EASE(solve(g, lam), *rows)
    secs = time.perf_counter() - t0
    log.info(
        "ease: λ %.4g chosen on validation (HR@%d %.4f)%s; %.1fs",
        lam, k, chosen[f"val_hr@{k}"], ", refit on train + validation" if refit else "", secs,
    )  # fmt: skip
    return model, {"lambda": lam, "tried": tried, "validation": chosen, "refit": refit, "seconds": round(secs, 2)}
