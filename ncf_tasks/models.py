"""GMF, MLP and NeuMF (He et al., WWW 2017), returning logits (the sigmoid lives in the loss).

* GMF: element-wise product of user and item embeddings, then a learned output layer.
* MLP: concatenated user and item embeddings through a ReLU tower whose widths are ``layers``; the
  first width is the concatenation, so each embedding has ``layers[0] // 2`` dimensions.
* NeuMF: its own GMF and MLP embeddings; the two last hidden layers are concatenated into one output
  layer. ``NeuMF.from_pretrained`` fuses trained GMF and MLP with output weights
  ``[α·w_GMF ; (1−α)·w_MLP]`` and bias ``α·b_GMF + (1−α)·b_MLP``, so at initialisation it scores exactly
  ``α·GMF + (1−α)·MLP`` in logit space.

Every ``forward`` broadcasts ``users`` against ``items``: users of shape (m, 1) with items (m, c) score
c items per user while computing the user side (lookup, its gradient, its half of the first MLP
layer) once per user instead of c times — a training batch of positives with their K negatives, or
a user's evaluation candidates.

``score_all`` scores users against every item without materialising (user, item) pairs for the first
MLP layer: ``W·[u; i] = W_u·u + W_i·i`` is computed once per user and once per item and broadcast,
which removes the largest matrix product of full-catalogue scoring. Training and validation passes do the
same for the item half whenever they name more (user, item) pairs than the catalogue has items.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ncf_tasks.baselines import EASE, Popularity
from ncf_tasks.errors import ConfigError

EMBEDDING_STD = 0.01  # the default of the ``embedding_std`` setting (the paper's N(0, 0.01) initialisation)


def _embedding(n: int, dim: int, std: float) -> nn.Embedding:
    e = nn.Embedding(n, dim)
    nn.init.normal_(e.weight, std=std)
    return e


def _collect(
    penalty: list | None,
    user: nn.Embedding,
    users: torch.Tensor,
    u: torch.Tensor | None,
    item: nn.Embedding,
    items: torch.Tensor,
    i: torch.Tensor | None,
) -> None:
    """Lazy L2: with a ``penalty`` list (training with ``l2`` > 0), add the squared norms of the rows this
    forward read (``u``, ``i``: the rows as gathered, or None where they were not). Its gradient reaches only
    rows that were read: rows not read get nothing."""
    if penalty is not None:
        penalty.append(_row_penalty(user, users, u) + _row_penalty(item, items, i))


def _row_penalty(table: nn.Embedding, idx: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Σ over ``idx`` of its row's squared norm. Where ``idx`` names more rows than the table has (a batch's
    items), as Σ_rows count·‖row‖² over the table, whose gradient is the table's size instead of the
    batch's: at ML-1M size it is 4x smaller, and the per-sample form's backward (a scalar times every
    gathered row) cost as much as the lookup itself. Otherwise from the gathered ``rows`` (no second
    lookup), as one dot product."""
    if rows is None or idx.numel() >= table.num_embeddings:
        counts = torch.bincount(idx.reshape(-1), minlength=table.num_embeddings).to(torch.float32)
        return counts @ table.weight.float().square().sum(1)
    flat = rows.float().reshape(-1)
    return torch.dot(flat, flat)


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout whose masks come from random bytes: a unit is dropped where its byte is below
    ``round(256 p)``, so the rate is ``p`` to the nearest 1/256 (0.2 drops 51/256 = 0.1992), and the kept ones
    are scaled to keep the mean. One 64-bit draw makes eight units' masks: ``F.dropout``'s draw per unit took
    2.3 s of a ~5 s NeuMF fine-tuning pass at ML-1M size on 2 cores, these masks 0.6 s (BENCHMARKS.md). Draws
    from torch's global generator, which fine-tuning seeds per epoch."""
    cut = round(p * 256)
    if cut <= 0:
        return x
    n = x.numel()
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    keep = words.view(torch.uint8)[:n].view(x.shape) >= cut
    return x * (keep.to(x.dtype) * (256 / (256 - cut)))


def _rows(table: nn.Embedding | torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of an embedding (or of any 2-D tensor) for ``idx`` of any shape → (*idx.shape, dim), through
    ``index_select``: its backward (one ``scatter_add_``) is about 3x faster on CPU than
    ``embedding_dense_backward``, which was the largest cost of an epoch at batch 16,384 (a custom
    ``index_add_`` backward measured no better)."""
    weight = table.weight if isinstance(table, nn.Embedding) else table
    return weight.index_select(0, idx.reshape(-1)).view(*idx.shape, weight.shape[1])  # -1 is ambiguous when empty


class GMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int = 8, init_std: float = EMBEDDING_STD):
        super().__init__()
        self.user, self.item = _embedding(n_users, factors, init_std), _embedding(n_items, factors, init_std)
        self.out = nn.Linear(factors, 1)
        nn.init.kaiming_uniform_(self.out.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.out.bias)

    def hidden(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        u, i = _rows(self.user, users), _rows(self.item, items)
        _collect(penalty, self.user, users, u, self.item, items, i)
        return u * i

    def forward(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        return self.out(self.hidden(users, items, penalty)).squeeze(-1)

    def score_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # (u ⊙ i)·w = (u ⊙ w)·i: one matrix product, no (B, I, factors) tensor
        return (_rows(self.user, users) * self.out.weight[0]) @ _rows(self.item, items).T + self.out.bias


class MLP(nn.Module):
    def __init__(
        self,
        n_users: int,
        n_items: int,
        layers: tuple[int, ...] = (64, 32, 16, 8),
        init_std: float = EMBEDDING_STD,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dropout = dropout  # after each tower layer, in training only (saved weights do not depend on it)
        if layers[0] % 2:
            raise ConfigError(f"mlp_layers[0]={layers[0]} must be even (split between user and item)")
        half = layers[0] // 2
        self.user, self.item = _embedding(n_users, half, init_std), _embedding(n_items, half, init_std)
        self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))
        for lin in self.tower:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.out = nn.Linear(layers[-1], 1)
        nn.init.kaiming_uniform_(self.out.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.out.bias)

    def hidden(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        u = _rows(self.user, users)
        if not self.tower:
            i = _rows(self.item, items)
            _collect(penalty, self.user, users, u, self.item, items, i)
            return torch.cat(torch.broadcast_tensors(u, i), dim=-1)
        # W·[u; i] + b as W_u·u + W_i·i + b: the same numbers without materialising the concatenation
        first, half = self.tower[0], u.shape[-1]
        if items.numel() >= self.item.num_embeddings:
            # W_i·i + b once per catalogue item, then gathered: a training batch or a validation pass names
            # more (item, sample) pairs than the catalogue has items, and the first layer's item half per
            # pair was the largest matrix product of an epoch (its backward too)
            xi = _rows(F.linear(self.item.weight, first.weight[:, half:], first.bias), items)
            _collect(penalty, self.user, users, u, self.item, items, None)
        else:
            i = _rows(self.item, items)
            _collect(penalty, self.user, users, u, self.item, items, i)
            xi = F.linear(i, first.weight[:, half:], first.bias)
        x = self._drop((F.linear(u, first.weight[:, :half]) + xi).relu_())
        for lin in self.tower[1:]:
            # ReLU in place (autograd allows it: nothing saved the pre-activation); for full-catalogue
            # scoring these (B, I, width) activations are what bounds memory
            x = self._drop(lin(x).relu_())
        return x

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.dropout) if self.dropout and self.training else x

    def forward(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        return self.out(self.hidden(users, items, penalty)).squeeze(-1)

    def hidden_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, I, layers[-1]) for every user × item: ``hidden`` with users broadcast against all items."""
        return self.hidden(users[:, None], items[None, :])

    def score_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden_all(users, items)).squeeze(-1)


class NeuMF(nn.Module):
    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 8,
        layers: tuple[int, ...] = (64, 32, 16, 8),
        init_std: float = EMBEDDING_STD,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.gmf = GMF(n_users, n_items, factors, init_std)
        self.mlp = MLP(n_users, n_items, layers, init_std, dropout)
        del self.gmf.out, self.mlp.out  # NeuMF has one output layer over both hidden layers
        self.out = nn.Linear(factors + layers[-1], 1)
        nn.init.kaiming_uniform_(self.out.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.out.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor, penalty: list | None = None) -> torch.Tensor:
        f, w = self.gmf.user.weight.shape[1], self.out.weight  # out·[h_gmf; h_mlp] without the concatenation
        h = F.linear(self.gmf.hidden(users, items, penalty), w[:, :f]) + F.linear(
            self.mlp.hidden(users, items, penalty), w[:, f:], self.out.bias
        )
        return h.squeeze(-1)

    def score_all(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        f = self.gmf.user.weight.shape[1]
        w = self.out.weight[0]
        gmf = (_rows(self.gmf.user, users) * w[:f]) @ _rows(self.gmf.item, items).T
        mlp = self.mlp.hidden_all(users, items) @ w[f:]
        return gmf + mlp + self.out.bias

    @classmethod
    def from_pretrained(cls, gmf: GMF, mlp: MLP, alpha: float = 0.5, dropout: float = 0.0) -> "NeuMF":
        n_users, factors = gmf.user.weight.shape
        n_items = gmf.item.weight.shape[0]
        layers = (2 * mlp.user.weight.shape[1], *(lin.out_features for lin in mlp.tower))
        model = cls(n_users, n_items, factors, layers, dropout=dropout)
        with torch.no_grad():
            for name in ("user", "item"):
                getattr(model.gmf, name).weight.copy_(getattr(gmf, name).weight)
                getattr(model.mlp, name).weight.copy_(getattr(mlp, name).weight)
            for dst, src in zip(model.mlp.tower, mlp.tower):
                dst.load_state_dict(src.state_dict())
            model.out.weight.copy_(torch.cat([alpha * gmf.out.weight, (1 - alpha) * mlp.out.weight], dim=1))
            model.out.bias.copy_(alpha * gmf.out.bias + (1 - alpha) * mlp.out.bias)
        return model


def pair_width(model: nn.Module) -> int:
    """Floats ``score_all`` holds per (user, item) pair at its widest layer: what sizes its chunks."""
    if isinstance(model, EASE):
        return 2  # the users' dense rows of X and their scores
    mlp = model.mlp if isinstance(model, NeuMF) else model if isinstance(model, MLP) else None
    if mlp is None or not mlp.tower:
        return 1
    return max(lin.out_features for lin in mlp.tower) * 2  # activation + ReLU output alive together


def build_model(
    kind: str,
    n_users: int,
    n_items: int,
    factors: int,
    layers: tuple[int, ...],
    init_std: float = EMBEDDING_STD,
    dropout: float = 0.0,
) -> nn.Module:
    if kind == "gmf":
        return GMF(n_users, n_items, factors, init_std)
    if kind == "mlp":
        return MLP(n_users, n_items, layers, init_std, dropout)
    if kind == "neumf":
        return NeuMF(n_users, n_items, factors, layers, init_std, dropout)
    raise ConfigError(f"model {kind!r}: allowed values are ['gmf', 'mlp', 'neumf']")


def from_state(kind: str, state: dict, n_users: int, n_items: int, factors: int, layers: tuple[int, ...]) -> nn.Module:
    """A saved model of any kind rebuilt from its ``state_dict`` (tensors): the neural ones through
    ``build_model``, the baselines from the arrays they hold (their shapes vary with the data)."""
    if kind == "ease":
        return EASE.from_state(state)
    if kind == "popularity":
        return Popularity.from_state(state)
    net = build_model(kind, n_users, n_items, factors, layers)
    net.load_state_dict(state)
    return net


def embedding_tables(model: nn.Module) -> tuple[list[nn.Embedding], list[nn.Embedding]]:
    """(user tables, item tables) of a model: what the lazy L2 penalty (``train``) reads rows of."""
    parts = [model.gmf, model.mlp] if isinstance(model, NeuMF) else [model]
    return [p.user for p in parts], [p.item for p in parts]


def embedding_penalty(model: nn.Module, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Sum of squares of the embedding rows a batch reads (``users`` once per positive, ``items`` once per
    sample), as training adds it through ``forward(..., penalty)``: what the tests check."""
    penalty: list = []
    model(users, items, penalty)
    return sum(penalty)
