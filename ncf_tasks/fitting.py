"""The epoch loop every model is trained with: optimiser, batches, validation, early stopping.

Pointwise log loss; every epoch draws ``train_negatives`` fresh negatives per positive in one call
(``sampling.train_negatives``), builds the epoch as device tensors, permutes the positives once and feeds
index slices — no Dataset/DataLoader, no Python per sample. After each epoch the validation candidates
are scored (HR@K decides the best epoch and early stopping); test candidates are never touched here.
Regularisation: lazy L2 on the embedding rows each batch reads (``l2``, ``models._collect``), decoupled
weight decay on dense layers (``dense_decay``), dropout in the MLP tower (``dropout``; ``neumf_dropout`` while
NeuMF is fine-tuned from its fused start). Each user's latest positives weigh more in the loss
(``recency_weights``): what a user does next follows what they did last.

Shared by the ``train`` stage (one model of a run, checkpointed every epoch) and by ``tune`` (three models
per trial, in memory, reporting each epoch to the pruner), so a trial scores exactly what a nightly run
would train.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable

import torch

from ncf_tasks import distributed
from ncf_tasks.config import Settings
from ncf_tasks.metrics import evaluate_model
from ncf_tasks.models import NeuMF, build_model, embedding_tables
from ncf_tasks.rundata import RunData
from ncf_tasks.sampling import PositiveSet, train_negatives

log = logging.getLogger(__name__)


def make_optimizer(kind: str, model: torch.nn.Module, settings: Settings, warm: bool = False) -> torch.optim.Optimizer:
    """Adam (decoupled weight decay ``dense_decay`` on the dense layers: AdamW) for pretraining; for NeuMF
    fused from pretrained models (or carried from production's), ``neumf_optimizer`` at ``neumf_lr``; for GMF
    and MLP carried from production's (``warm``), Adam at ``warm_lr``. Embeddings get no weight decay
    here: their L2 is the lazy penalty of ``train_epoch`` (``l2``)."""
    user_tables, item_tables = embedding_tables(model)
    emb_ids = {id(t.weight) for t in (*user_tables, *item_tables)}
    groups = [
        {"params": [p for p in model.parameters() if id(p) in emb_ids], "weight_decay": 0.0},
        {"params": [p for p in model.parameters() if id(p) not in emb_ids], "weight_decay": settings.dense_decay},
    ]
    fine_tune = kind == "neumf" and settings.pretrain
    if fine_tune and settings.neumf_optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.neumf_lr, momentum=settings.sgd_momentum)
    lr = settings.neumf_lr if fine_tune else settings.warm_lr if warm else settings.lr
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def new_model(
    kind: str,
    n_users: int,
    n_items: int,
    settings: Settings,
    parts: tuple[torch.nn.Module, torch.nn.Module] | None = None,
) -> torch.nn.Module:
    """The model a training starts from: NeuMF with pretraining fused from ``parts`` (trained GMF, MLP),
    anything else freshly initialised. Used by ``train`` (parts loaded from the run) and ``tune`` (in memory)."""
    if kind == "neumf" and settings.pretrain:
        return NeuMF.from_pretrained(*parts, settings.alpha, settings.neumf_dropout)
    return build_model(
        kind, n_users, n_items, settings.factors, settings.mlp_layers, settings.embedding_std, settings.dropout
    )


AUTO_STEPS_PER_EPOCH = 256
AUTO_BATCH_RANGE = (1024, 16384)


def batch_size_for(settings: Settings, positives: int) -> int:
    """The configured batch, or (``batch_size=0``) the power of two nearest ``samples / 256``, clamped.

    Why: convergence per epoch follows the number of optimiser steps (ML-100K was tuned at batch 2048,
    ~240 steps), while throughput on CPU needs large batches (16,384 runs an ML-1M epoch about 3x
    faster than 2048). Keeping ~256 steps per epoch gives small data the steps it needs and large
    data the batch size that keeps the cores busy (measurements in BENCHMARKS.md).
    """
    if settings.batch_size:
        return settings.batch_size
    samples = max(positives * (1 + settings.train_negatives), 1)
    lo, hi = AUTO_BATCH_RANGE
    return int(min(max(2 ** round(math.log2(max(samples / AUTO_STEPS_PER_EPOCH, 1))), lo), hi))


def train_epoch(
    model,
    opt,
    data: RunData,
    pos: PositiveSet,
    settings: Settings,
    gen: torch.Generator,
    device: torch.device,
    rank: "distributed.Rank | None" = None,
    fraction: float = 1.0,
) -> tuple[float, int]:
    """One epoch: a permutation of the positives, fresh negatives, index-slice batches.

    ``fraction`` < 1: the epoch passes over the first ``fraction`` of the permutation (NeuMF fine-tuning's
    shorter epochs, ``neumf_epoch_fraction``), at the batch size of a whole pass.

    Returns (mean loss, samples). A batch is ``batch_size // (1 + K)`` shuffled positives, each with
    its K fresh negatives: the epoch's samples are exactly those of shuffling all (positive + negative)
    pairs, at a fixed 1:K ratio in every batch, without permuting and gathering the K+1 times larger
    sample arrays (~1 s of a 5M-sample epoch on 2 cores), and the model computes each positive's user
    side once for its 1 + K items (``models``: users broadcast against items).

    With ``rank`` (data-parallel training, ``distributed``): every rank draws the same permutation and
    negatives (the one-process stream), and takes its contiguous ``1/world`` of each batch; each rank's
    loss is its samples' sum over the whole batch's sample count, times ``world``, so DDP's average of the
    ranks' gradients is the whole batch's gradient. Data-parallel training is then one-process training
    split across ranks: the same batches, steps and numbers, up to the order of float sums. ``model`` is
    the DDP wrapper. Returns the global mean loss and sample count.
    """
    k = settings.train_negatives
    n_all = data.train_users.numel()
    world, me = (rank.world, rank.rank) if rank else (1, 0)
    perm = torch.randperm(n_all, generator=gen, device=device)
    if fraction < 1.0:
        perm = perm[: max(1, math.ceil(n_all * fraction))]
    n = perm.numel()
    pu, pi = data.train_users[perm], data.train_items[perm]
    w = recency_weights(data, settings)
    w = None if w is None else w[perm, None]
    neg = train_negatives(pos, pu, k, gen)  # every rank draws the whole epoch's: the one-process stream
    step = max(1, batch_size_for(settings, n_all) // (1 + k))  # positives per batch (of all ranks together)
    labels = torch.zeros((step, 1 + k), device=device)
    labels[:, 0] = 1.0
    loss_sum = torch.zeros((), device=device)  # accumulated on device: no host sync per step
    amp = device.type == "cuda"
    model.train()
    for s in range(0, n, step):
        m = min(step, n - s)
        lo, hi = s + m * me // world, s + m * (me + 1) // world  # this rank's share of the batch
        # (m, 1) users against (m, 1 + K) items: the user side is computed once per positive
        items = torch.cat([pi[lo:hi, None], neg[lo:hi]], dim=1)
        penalty = [] if settings.l2 else None  # lazy L2 on the rows this batch reads (models._collect)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(pu[lo:hi, None], items, penalty)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float(), labels[: hi - lo], None if w is None else w[lo:hi], reduction="sum"
        )
        scale = world / (m * (1 + k))  # the whole batch's mean, once DDP has averaged the ranks' gradients
        loss = (bce + settings.l2 * sum(penalty)) * scale if penalty else bce * scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += bce.detach()  # the log loss alone, comparable across l2 values
    total = n * (1 + k)
    if rank:
        distributed.all_sum(loss_sum)
    return float(loss_sum) / total, total


def recency_weights(data: RunData, settings: Settings) -> torch.Tensor | None:
    """Per train positive, 1 + recency_boost * 0.5 ** (r / recency_halflife), scaled to mean 1; None when off.

    ``r``: the positive's place before its user's latest train positive (``RunData.train_recency``; equal times
    share a place). Why: the pipeline predicts each user's next interaction (the held-out items are the latest,
    and a nightly table serves the next day), and a user's next item follows their recent ones more closely
    than their first ones. On MovieLens 100K, 5 seeds, validation only, NeuMF's HR@10 rose from 0.724 to 0.740
    and GMF's and MLP's by 0.02 each (BENCHMARKS.md). A positive's K negatives share its weight, so the ratio
    of positives to negatives in the loss is unchanged; the mean of 1 keeps ``l2``'s strength and the loss
    comparable with an unweighted run.
    """
    if not settings.recency_boost or data.train_recency is None:
        return None
    w = 1.0 + settings.recency_boost * torch.exp2(-data.train_recency.float() / settings.recency_halflife)
    return w / w.mean()


def epoch_generator(settings: Settings, epoch: int, device: torch.device) -> torch.Generator:
    """The random stream of one epoch (permutation, negatives): the same for an epoch of ``fit`` and of
    ``refit``, and for a resumed epoch, so a killed task ends where an uninterrupted one would."""
    return torch.Generator(device=device).manual_seed(epoch_seed(settings, epoch))


def epoch_seed(settings: Settings, epoch: int) -> int:
    """The seed of one epoch's random streams: its generator's, and the global one that dropout draws from."""
    return settings.seed * 100_003 + epoch


def initial_state(net: torch.nn.Module, data: RunData, k: int, model: str) -> dict:
    """The loop's state before epoch 1: the starting model's validation HR/NDCG is the score to beat (for
    NeuMF with pretraining, the fused α·GMF + (1−α)·MLP; fine-tuning must improve on it to count)."""
    hr0, nd0 = evaluate_model(net, data.valid_users, data.valid_candidates, k)
    log.info("%s: initial validation HR@%d %.4f NDCG@%d %.4f", model, k, hr0, k, nd0)
    return {
        "epoch": 0,
        "history": [],
        "best_hr": hr0,
        "best_epoch": 0,
        "bad_epochs": 0,
        "best_state": copy.deepcopy(net.state_dict()),
        "init_hr": hr0,
        "init_ndcg": nd0,
    }


def epoch_fraction(model: str, settings: Settings) -> float:
    """The share of the positives one of ``model``'s epochs passes over: ``neumf_epoch_fraction`` for NeuMF
    fine-tuned from a fused start, a whole pass otherwise."""
    return settings.neumf_epoch_fraction if model == "neumf" and settings.pretrain else 1.0


def epoch_limits(model: str, settings: Settings) -> tuple[int, int]:
    """``epochs`` and ``patience`` in ``model``'s epochs: both settings count whole passes, so shorter
    fine-tuning epochs only add validation points between them and never stop a training sooner."""
    f = epoch_fraction(model, settings)
    return math.ceil(settings.epochs / f - 1e-9), math.ceil(settings.patience / f - 1e-9)


def fit(
    model: str,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: RunData,
    pos: PositiveSet,
    settings: Settings,
    device: torch.device,
    state: dict,
    on_epoch: Callable[[dict, dict], None] | None = None,
    rank: "distributed.Rank | None" = None,
    train_net: torch.nn.Module | None = None,
) -> dict:
    """Selection: epochs until ``settings.epochs`` or ``patience`` epochs without a better validation HR; keeps
    the best epoch's weights in ``state``. ``on_epoch(row, state)`` runs after each epoch: run_train's
    checkpoint, the tuner's pruning report (which may raise to stop the trial). Data-parallel: ``rank``,
    and ``train_net`` the DDP wrapper of ``net`` that the training steps go through."""
    until = epoch_limits(model, settings)[0]
    _epochs(model, net, opt, data, pos, settings, device, state, state, until, True, on_epoch, rank, train_net)
    return state


def refit(
    model: str,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: RunData,
    pos: PositiveSet,
    settings: Settings,
    device: torch.device,
    state: dict,
    on_epoch: Callable[[dict, dict], None] | None = None,
    rank: "distributed.Rank | None" = None,
    train_net: torch.nn.Module | None = None,
) -> dict:
    """``settings.refit``: ``state["refit"]["epochs"]`` (the epoch ``fit`` chose) epochs of ``net``, a fresh start,
    on train + validation positives, without validation (the validation items are now training data).

    Why (Rendle et al. 2020 train again on all but the test split after tuning): a model trained on train
    positives alone predicts the test item across a gap, each user's latest train interaction being two steps
    back, while validation sees the very next item. On MovieLens 100K closing it raised NeuMF's test HR@10
    by 0.009 on average over 5 seeds (BENCHMARKS.md). The epochs use the same seeds as ``fit``'s, so a refit
    repeats the chosen training run on the larger set; progress sits in ``state["refit"]`` so a killed task
    resumes it."""
    r = state["refit"]
    train = data.with_validation()
    _epochs(model, net, opt, train, pos, settings, device, r, state, r["epochs"], False, on_epoch, rank, train_net)
    return state


def _epochs(
    model: str,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: RunData,
    pos: PositiveSet,
    settings: Settings,
    device: torch.device,
    phase: dict,
    state: dict,
    until: int,
    validate: bool,
    on_epoch: Callable[[dict, dict], None] | None,
    rank: "distributed.Rank | None",
    train_net: torch.nn.Module | None,
) -> None:
    """The one epoch loop of both phases. ``phase``: the progress it advances (``epoch``, ``history``; with
    ``validate``, the best epoch so far and ``bad_epochs`` too), ``state`` the whole state ``on_epoch`` gets.
    With ``validate`` each epoch is scored on the validation candidates and ``patience`` may stop the loop."""
    k = settings.eval_k
    fraction, patience = epoch_fraction(model, settings), epoch_limits(model, settings)[1]
    t_start, first = time.perf_counter(), phase["epoch"]
    while phase["epoch"] < until and not (validate and phase["bad_epochs"] >= patience):
        epoch = phase["epoch"] + 1
        gen = epoch_generator(settings, epoch, device)
        torch.manual_seed(epoch_seed(settings, epoch))  # dropout's masks (the global stream): a resumed epoch's too
        t = time.perf_counter()
        loss, samples = train_epoch(train_net or net, opt, data, pos, settings, gen, device, rank, fraction)
        train_s = time.perf_counter() - t
        row: dict = {"epoch": epoch, "loss": round(loss, 6)}
        if fraction < 1.0:  # fine-tuning's shorter epochs: how many passes over the positives so far
            row["passes"] = round(epoch * fraction, 3)
        if validate:
            hr, ndcg = evaluate_model(net, data.valid_users, data.valid_candidates, k)
            row.update({f"val_hr@{k}": round(hr, 5), f"val_ndcg@{k}": round(ndcg, 5)})
            if hr > phase["best_hr"]:
                phase.update(best_hr=hr, best_epoch=epoch, bad_epochs=0, best_state=copy.deepcopy(net.state_dict()))
            else:
                phase["bad_epochs"] += 1
        row.update(samples_per_s=round(samples / train_s), epoch_s=round(train_s, 3))
        phase["history"].append(row)
        phase["epoch"] = epoch
        elapsed = time.perf_counter() - t_start
        eta = elapsed / (epoch - first) * (until - epoch)
        if validate:
            log.info(
                "epoch %d/%d %s: loss %.4f, val HR@%d %.4f NDCG@%d %.4f, %.0f samples/s, elapsed %.0fs, ETA <= %.0fs%s",
                epoch, until, model, loss, k, hr, k, ndcg, samples / train_s, elapsed, eta,
                " (best)" if phase["best_epoch"] == epoch else "",
            )  # fmt: skip
        else:
            log.info(
                "refit epoch %d/%d %s on train + validation: loss %.4f, %.0f samples/s, elapsed %.0fs, ETA %.0fs",
                epoch, until, model, loss, samples / train_s, elapsed, eta,
            )  # fmt: skip
        if on_epoch is not None:
            on_epoch(row, state)


def best_ndcg(state: dict, k: int) -> float:
    hist = [h for h in state["history"] if h["epoch"] == state["best_epoch"]]
    return hist[0][f"val_ndcg@{k}"] if hist else state["init_ndcg"]
