"""Training of GMF, MLP and NeuMF with the paper's protocol, fast on CPU and GPU.

Pointwise log loss; every epoch draws ``train_negatives`` fresh negatives per positive in one call
(``sampling.train_negatives``), builds the epoch as three device tensors, permutes them once and feeds
index slices — no Dataset/DataLoader, no Python per sample. After each epoch the validation candidates
are scored (HR@K decides the best epoch and early stopping); test candidates are never touched here.

On CUDA the forward pass runs under bf16 autocast and sampling happens on the GPU. On CPU the thread
count is set once (``threads``, default all cores); the sampler uses the same pool between steps, so
nothing is oversubscribed.

Artifacts (through ``artifacts.RunArtifacts``): ``<model>.pt`` (best state dict, settings, id-map keys,
epoch, validation metrics), ``<model>_history.json`` (per-epoch loss, HR, NDCG, samples/s) and
``<model>_checkpoint.pt`` (written every epoch; a killed task resumes from it instead of starting over,
unless it belongs to an earlier build of the run id: then it is discarded).
"""

from __future__ import annotations

import copy
import logging
import math
import time

import torch

from ncf_tasks.artifacts import MODELS, RunArtifacts, RunData, setup_torch
from ncf_tasks.config import Settings
from ncf_tasks.errors import NoDataError
from ncf_tasks.metrics import evaluate_model
from ncf_tasks.models import NeuMF, build_model
from ncf_tasks.sampling import PositiveSet, train_negatives
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)


def make_optimizer(kind: str, model: torch.nn.Module, settings: Settings) -> torch.optim.Optimizer:
    if kind == "neumf" and settings.pretrain and settings.neumf_optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.neumf_lr, momentum=settings.sgd_momentum,
                               weight_decay=settings.l2)
    lr = settings.neumf_lr if kind == "neumf" and settings.pretrain else settings.lr
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=settings.l2, fused=True)


def init_model(kind: str, data: RunData, settings: Settings, run: RunArtifacts) -> torch.nn.Module:
    """A fresh model; NeuMF with pretraining is fused from this run's trained GMF and MLP (which must
    have been trained on the current training set: ``RunArtifacts.load_model`` refuses stale ones)."""
    if kind == "neumf" and settings.pretrain:
        for sub in ("gmf", "mlp"):
            if not run.has_model(sub):
                raise NoDataError(f"NeuMF with pretraining needs {run.uri(run.model(sub))}: train {sub} for run "
                                  f"{run.run_id} first, or set pretrain=false")
        gmf, _ = run.load_model("gmf")
        mlp, _ = run.load_model("mlp")
        return NeuMF.from_pretrained(gmf, mlp, settings.alpha)
    return build_model(kind, data.n_users, data.n_items, settings.factors, settings.mlp_layers, settings.embedding_std)


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


def train_epoch(model, opt, data: RunData, pos: PositiveSet, settings: Settings, gen: torch.Generator,
                device: torch.device) -> tuple[float, int]:
    """One epoch: a permutation of the positives, fresh negatives, index-slice batches.

    Returns (mean loss, samples). A batch is ``batch_size // (1 + K)`` shuffled positives, each with
    its K fresh negatives: the epoch's samples are exactly those of shuffling all (positive + negative)
    pairs, at a fixed 1:K ratio in every batch, without permuting and gathering the K+1 times larger
    sample arrays (~1 s of a 5M-sample epoch on 2 cores), and the model computes each positive's user
    side once for its 1 + K items (``models``: users broadcast against items).
    """
    k = settings.train_negatives
    n = data.train_users.numel()
    perm = torch.randperm(n, generator=gen, device=device)
    pu, pi = data.train_users[perm], data.train_items[perm]
    neg = train_negatives(pos, pu, k, gen)
    step = max(1, batch_size_for(settings, n) // (1 + k))  # positives per batch
    labels = torch.zeros((step, 1 + k), device=device)
    labels[:, 0] = 1.0
    loss_sum = torch.zeros((), device=device)  # accumulated on device: no host sync per step
    amp = device.type == "cuda"
    model.train()
    for s in range(0, n, step):
        m = min(step, n - s)
        # (m, 1) users against (m, 1 + K) items: the user side is computed once per positive
        items = torch.cat([pi[s:s + m, None], neg[s:s + m]], dim=1)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(pu[s:s + m, None], items)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels[:m])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * items.numel()
    total = n * (1 + k)
    return float(loss_sum) / total, total


def run_train(settings: Settings, *, run_id: str, model: str) -> dict:
    """Stage: train one model of a run (resuming from its checkpoint), keep the best validation epoch."""
    if model not in MODELS:
        raise ValueError(f"model {model!r}: allowed values are {list(MODELS)}")
    t_start = time.perf_counter()
    run = RunArtifacts(Storage(settings), run_id)
    device = setup_torch(settings)
    data = run.load_data(device)
    torch.manual_seed(settings.seed)
    net = init_model(model, data, settings, run).to(device)
    opt = make_optimizer(model, net, settings)
    pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items, device)
    k = settings.eval_k

    state = {"epoch": 0, "history": [], "best_hr": -1.0, "best_epoch": -1, "bad_epochs": 0, "best_state": None}
    ck = run.load_checkpoint(model)
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        log.info("%s: resuming from %s after epoch %d", model, run.uri(run.checkpoint(model)), state["epoch"])
    if state["epoch"] == 0 and state["best_state"] is None:
        hr0, nd0 = evaluate_model(net, data.valid_users, data.valid_candidates, k)
        log.info("%s: initial validation HR@%d %.4f NDCG@%d %.4f", model, k, hr0, k, nd0)
        state.update(best_hr=hr0, best_epoch=0, best_state=copy.deepcopy(net.state_dict()), init_hr=hr0, init_ndcg=nd0)

    batch = batch_size_for(settings, data.train_users.numel())
    log.info("%s: batch %d%s, %d positives x (1 + %d negatives) per epoch, device %s", model, batch,
             " (auto)" if not settings.batch_size else "", data.train_users.numel(), settings.train_negatives, device)
    while state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        epoch = state["epoch"] + 1
        gen = torch.Generator(device=device).manual_seed(settings.seed * 100_003 + epoch)
        t = time.perf_counter()
        loss, samples = train_epoch(net, opt, data, pos, settings, gen, device)
        train_s = time.perf_counter() - t
        hr, ndcg = evaluate_model(net, data.valid_users, data.valid_candidates, k)
        elapsed = time.perf_counter() - t_start
        state["history"].append({"epoch": epoch, "loss": round(loss, 6), f"val_hr@{k}": round(hr, 5),
                                 f"val_ndcg@{k}": round(ndcg, 5), "samples_per_s": round(samples / train_s),
                                 "epoch_s": round(train_s, 3)})
        if hr > state["best_hr"]:
            state.update(best_hr=hr, best_epoch=epoch, bad_epochs=0, best_state=copy.deepcopy(net.state_dict()))
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        eta = (elapsed / max(epoch - (state["history"][0]["epoch"] - 1), 1)) * (settings.epochs - epoch)
        log.info("epoch %d/%d %s: loss %.4f, val HR@%d %.4f NDCG@%d %.4f, %.0f samples/s, elapsed %.0fs, ETA <= %.0fs%s",
                 epoch, settings.epochs, model, loss, k, hr, k, ndcg, samples / train_s, elapsed, eta,
                 " (best)" if state["best_epoch"] == epoch else "")
        run.save_checkpoint(model, {"model": net.state_dict(), "optimizer": opt.state_dict(), "state": state})

    if state["bad_epochs"] >= settings.patience:
        stop_reason = f"early stop: no better validation HR@{k} for {settings.patience} epochs"
    else:
        stop_reason = f"reached epochs={settings.epochs}"
    log.info("%s: %s after epoch %d", model, stop_reason, state["epoch"])
    best = state["best_state"]
    hist = [h for h in state["history"] if h["epoch"] == state["best_epoch"]]
    best_ndcg = hist[0][f"val_ndcg@{k}"] if hist else state.get("init_ndcg")
    uri = run.save_model(model, best, settings, epoch=state["best_epoch"],
                         validation={f"hr@{k}": state["best_hr"], f"ndcg@{k}": best_ndcg})
    secs = time.perf_counter() - t_start
    fused = model == "neumf" and settings.pretrain
    run.save_history(model, {"model": model, "batch_size": batch, "epochs": state["history"],
                             "best_epoch": state["best_epoch"], "stop_reason": stop_reason, "seconds": round(secs, 1),
                             "init": {f"val_hr@{k}": state.get("init_hr"), f"val_ndcg@{k}": state.get("init_ndcg"),
                                      "fused": fused}})
    log.info("%s: best validation HR@%d %.4f at epoch %d; saved %s (%.0fs)", model, k, state["best_hr"],
             state["best_epoch"], uri, secs)
    mean_sps = sum(h["samples_per_s"] for h in state["history"]) / max(len(state["history"]), 1)
    return {"run_id": run_id, "model": model, "device": str(device), "epochs": state["epoch"],
            "best_epoch": state["best_epoch"], "stop_reason": stop_reason,
            "start_val_hr": round(state.get("init_hr") or 0.0, 5), "batch_size": batch, f"val_hr@{k}": round(state["best_hr"], 5),
            f"val_ndcg@{k}": round(best_ndcg or 0.0, 5), "samples_per_s": round(mean_sps),
            "seconds": round(secs, 1), "uri": uri}
