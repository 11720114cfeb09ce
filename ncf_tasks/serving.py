"""The published model as plain arrays, and full-catalogue top-K scoring with numpy: no torch.

Why: a publish score shard is a task of its own, and at ML-1M size importing torch (~2 s on this
CPU) cost more than the shard's scoring (~0.8 s). ``evaluate`` exports the model it judged as an
``.npz`` of its ``state_dict`` (``export``; no pickle: ``np.load(allow_pickle=False)``) with a JSON
record of what it is, and ``metrics.json`` names the file's SHA-256: a shard scores exactly the
evaluated model or refuses. The same file lets a downstream service score without torch.

``top_k`` computes what ``models.*.score_all`` computes (the test holds the two to float32
rounding), chunk by chunk: a chunk of users against every item, excluded pairs set to -inf, then
``argpartition``. Chunks run on ``threads`` Python threads with BLAS pinned to one thread each
(numpy releases the GIL in matrix products, element-wise operations and partitioning): two
1-thread chunks use two cores better than one 2-thread product, as the element-wise ReLU and the
partition are single-threaded in numpy and in torch alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncf_tasks.errors import DataError

log = logging.getLogger(__name__)
FORMAT = "ncf-serving/1"
META = "__meta__"  # the npz entry holding the JSON record (an array of one string)
# Activation floats per full-catalogue chunk (and thread), for this scorer and torch's (``scoring``).
# Measured (benchmarks/publish.py): 2^23 (32 MB per tensor) is both faster and far leaner than 2^27 —
# the chunk's activations stay cache- and allocator-friendly; 2^20-2^22 lose to per-chunk overhead.
SCORE_CHUNK_CELLS = 1 << 23
BASELINES = ("ease", "popularity")  # the simple models a run may publish (``publish_model=best``)
MAX_CHUNK_USERS = 64  # so that a small catalogue still has chunks to split into shards
PROGRESS_EVERY_S = 10.0


def export(state_dict: dict[str, Any], meta: dict) -> bytes:
    """An ``.npz`` of a model's parameters (any array-likes: torch CPU tensors convert) and ``meta``
    (``model``, ``trained_at``, ``manifest_digest``, ...) as JSON."""
    arrays = {k: np.asarray(v) for k, v in state_dict.items()}
    arrays = {k: a if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32) for k, a in arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META: np.array(json.dumps({"format": FORMAT, **meta}))})
    return buf.getvalue()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _Tower:
    """One model's MLP half: embeddings and the tower's layers (the first split into user and item halves)."""

    user: np.ndarray
    item: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]


class ServingModel:
    """GMF, MLP, NeuMF, EASE^R or popularity from ``export``'s bytes, scoring users against the whole catalogue."""

    def __init__(self, data: bytes, source: str):
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop(META)))
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{source}: not a serving model file ({type(e).__name__}: {str(e)[:200]})") from None
        self.meta = meta if isinstance(meta, dict) else {}
        self.state = arrays  # the state_dict, for torch on a GPU worker (``publish.Scorer``)
        if self.meta.get("format") != FORMAT:
            raise DataError(f"{source}: format {str(self.meta.get('format'))[:40]!r}, expected {FORMAT!r}")
        kind = self.meta.get("model")
        self.kind = kind
        self.gmf = self.mlp = self.ease = self.popularity = None
        if kind in BASELINES:
            self._baseline(arrays, source)
            return
        prefix = {"gmf": ("", None), "mlp": (None, ""), "neumf": ("gmf.", "mlp.")}.get(kind)
        if prefix is None:
            raise DataError(f"{source}: model {str(kind)[:40]!r} is not one of gmf, mlp, neumf, {', '.join(BASELINES)}")
        g, m = prefix
        try:
            self.gmf = (arrays[g + "user.weight"], arrays[g + "item.weight"]) if g is not None else None
            if m is not None:
                n = sum(1 for k in arrays if k.startswith(m + "tower.") and k.endswith(".weight"))
                self.mlp = _Tower(
                    arrays[m + "user.weight"],
                    arrays[m + "item.weight"],
                    [(arrays[f"{m}tower.{j}.weight"], arrays[f"{m}tower.{j}.bias"]) for j in range(n)],
                )
            self.out_w, self.out_b = arrays["out.weight"][0], float(arrays["out.bias"][0])
        except KeyError as e:
            raise DataError(f"{source}: a {self.meta['model']} model lacks the array {str(e)[:80]}") from None
        users, items = self.gmf or (self.mlp.user, self.mlp.item)
        self.n_users, self.n_items = users.shape[0], items.shape[0]
        self._item_side = self._items()

    def _baseline(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """EASE^R (its B and the CSR rows of the positives it was fit on) or item popularity (its counts)."""
        try:
            if self.kind == "ease":
                self.ease = (arrays["b"], arrays["indptr"], arrays["indices"], arrays["values"])
                self.n_users, self.n_items = arrays["indptr"].shape[0] - 1, arrays["b"].shape[0]
            else:
                self.popularity = arrays["counts"]
                self.n_users, self.n_items = int(self.meta["n_users"]), arrays["counts"].shape[0]
        except KeyError as e:
            raise DataError(f"{source}: a {self.kind} model lacks {str(e)[:80]}") from None
        self._item_side = {}

    def _items(self) -> dict[str, np.ndarray]:
        """What every chunk shares, computed once: the item half of the first layer (with its bias),
        or of the output layer for a tower-less MLP."""
        side: dict[str, np.ndarray] = {}
        f = self.gmf[0].shape[1] if self.gmf else 0
        if self.mlp:
            half = self.mlp.user.shape[1]
            if self.mlp.layers:
                w1, b1 = self.mlp.layers[0]
                side["x_item"] = self.mlp.item @ w1[:, half:].T + b1
            else:
                side["out_item"] = self.mlp.item @ self.out_w[f + half :]
        return side

    def scores(self, a: int, b: int) -> np.ndarray:
        """(b - a, n_items) float32 logits of users a..b-1 against every item."""
        if self.ease is not None:  # x_u·B with x_u the user's row of the positives EASE^R was fit on
            bmat, indptr, indices, values = self.ease
            x = np.zeros((b - a, self.n_items), np.float32)
            lo, hi = indptr[a], indptr[b]
            rows = np.repeat(np.arange(b - a), np.diff(indptr[a : b + 1]))
            np.add.at(x, (rows, indices[lo:hi]), values[lo:hi])
            return x @ bmat
        if self.popularity is not None:
            return np.broadcast_to(self.popularity.astype(np.float32), (b - a, self.n_items)).copy()
        f = self.gmf[0].shape[1] if self.gmf else 0
        s = np.zeros((b - a, self.n_items), np.float32)
        if self.gmf:
            s += (self.gmf[0][a:b] * self.out_w[:f]) @ self.gmf[1].T  # (u ⊙ w)·i: no (users, items, f) tensor
        if self.mlp:
            u, half = self.mlp.user[a:b], self.mlp.user.shape[1]
            if not self.mlp.layers:
                s += (u @ self.out_w[f : f + half])[:, None] + self._item_side["out_item"][None, :]
            else:
                w1 = self.mlp.layers[0][0]
                x = (u @ w1[:, :half].T)[:, None, :] + self._item_side["x_item"][None, :, :]
                np.maximum(x, 0, out=x)
                x = x.reshape(-1, x.shape[-1])
                for w, bias in self.mlp.layers[1:]:
                    x = x @ w.T
                    x += bias
                    np.maximum(x, 0, out=x)
                s += (x @ self.out_w[f:]).reshape(b - a, self.n_items)
        s += self.out_b
        return s

    def chunk_users(self, chunk_cells: int = SCORE_CHUNK_CELLS) -> int:
        """Users per chunk: at most ``chunk_cells`` floats at the widest layer (activation and ReLU output).

        Chunks start at multiples of this from user 0, and publish's shards start at chunk starts: BLAS
        rounds a row differently with the number of rows in the product (OpenBLAS's edge kernels), so
        only the same chunks give bit-identical scores, whatever the shard count or thread count."""
        width = max((w.shape[0] for w, _ in self.mlp.layers), default=0) * 2 if self.mlp else 2 if self.ease else 0
        return max(1, min(MAX_CHUNK_USERS, chunk_cells // (max(self.n_items, 1) * max(width, 1))))

    def top_k(
        self,
        lo: int,
        hi: int,
        k: int,
        exclude: tuple[np.ndarray, np.ndarray],
        threads: int = 1,
        chunk_cells: int = SCORE_CHUNK_CELLS,
        blocked: np.ndarray | None = None,
        removed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(item_idx int32, score float32), each (hi - lo, min(k, n_items)), best first (equal scores within
        a list in item order), for users lo..hi-1; ``exclude = (user_idx, item_idx)`` pairs score -inf, so a user with
        fewer than k allowed items gets -inf in the tail. ``blocked`` items (the catalogue's unavailable ones)
        score -inf for every user, so a list is filled with the model's next-best items; ``removed[u - lo]``
        (if given) receives how many of user u's top-k slots they held before (``displaced``)."""
        n, n_items = hi - lo, self.n_items
        k = min(k, n_items)
        step = self.chunk_users(chunk_cells)
        eu, ei = np.asarray(exclude[0], np.int64), np.asarray(exclude[1], np.int64)
        inside = (eu >= lo) & (eu < hi)
        order = np.argsort(eu[inside], kind="stable")  # each chunk's exclusions: one slice
        rows, cols = eu[inside][order] - lo, ei[inside][order]
        edges = [0, *range(-lo % step or step, n, step), n] if n else [0]  # at users that are multiples of step
        bounds = np.searchsorted(rows, np.array(edges))
        out_i = np.empty((n, k), np.int32)
        out_s = np.empty((n, k), np.float32)
        done, lock, t0 = [0, time.perf_counter()], threading.Lock(), time.perf_counter()

        def chunk(c: int) -> None:
            a, b = edges[c], edges[c + 1]
            s = self.scores(lo + a, lo + b)
            s[rows[bounds[c] : bounds[c + 1]] - a, cols[bounds[c] : bounds[c + 1]]] = -np.inf
            if blocked is not None and blocked.size:
                held = s[:, blocked]  # a copy: the blocked items' scores, seen pairs already -inf
                s[:, blocked] = -np.inf
            idx = np.argpartition(s, n_items - k, axis=1)[:, n_items - k :]
            val = np.take_along_axis(s, idx, 1)
            best = np.lexsort((idx, -val), axis=1)  # score descending, then item index: reproducible order
            out_i[a:b] = np.take_along_axis(idx, best, 1)
            out_s[a:b] = np.take_along_axis(val, best, 1)
            if removed is not None and blocked is not None and blocked.size:
                removed[a:b] = displaced(out_s[a:b], held)
            with lock:
                done[0] += b - a
                if time.perf_counter() - done[1] > PROGRESS_EVERY_S:
                    done[1] = time.perf_counter()
                    part = done[0] / n
                    log.info(
                        "scored %d/%d users against %d items (%.0f%%), ETA %.0fs",
                        done[0],
                        n,
                        n_items,
                        100 * part,
                        (done[1] - t0) * (1 - part) / max(part, 1e-9),
                    )

        with _blas_threads(1):
            chunks = range(len(edges) - 1)
            if threads <= 1 or len(chunks) <= 1:
                for c in chunks:
                    chunk(c)
            else:
                with ThreadPoolExecutor(min(threads, len(chunks))) as pool:
                    list(pool.map(chunk, chunks))  # list(): a chunk's exception is raised here
        return out_i, out_s


def displaced(top: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Per row, how many slots of the top-k before the blocked items were removed held a blocked item: the
    k best of the row's kept top-k scores (``top``, (n, k)) merged with the blocked items' scores (``held``).
    Costs O(n·(k + blocked)), not a second full-catalogue top-k."""
    k, nb = top.shape[1], held.shape[1]
    if nb > k:
        held = np.partition(held, nb - k, axis=1)[:, nb - k :]
    merged = np.concatenate([top, held], axis=1)
    pick = np.argpartition(-merged, k - 1, axis=1)[:, :k]  # -(-inf) sorts last: a short list takes none
    return ((pick >= k) & np.isfinite(np.take_along_axis(merged, pick, 1))).sum(1)


def _blas_threads(n: int):
    """BLAS (OpenBLAS in numpy's wheels) limited to ``n`` threads while scoring: chunks are the parallelism."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n, user_api="blas")
