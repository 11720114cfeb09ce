"""Stage ``train``: one model of a run (GMF, MLP, or NeuMF fused from this run's GMF and MLP), resumable.

The loop itself is ``fitting`` (shared with ``tune``). On CUDA the forward pass runs under bf16 autocast and
sampling happens on the GPU. On CPU the thread count is set once (``threads``, default all cores); the
sampler uses the same pool between steps, so nothing is oversubscribed.

Artifacts (through ``artifacts.RunArtifacts``): ``<model>.pt`` (best state dict, settings, id-map keys,
epoch, validation metrics), ``<model>_history.json`` (per-epoch loss, HR, NDCG, samples/s, and the
starting model's validation HR/NDCG: for NeuMF the fused start, so the gain of fine-tuning shows) and
``<model>_checkpoint.pt`` (written every epoch; a killed task resumes from it instead of starting over,
unless it belongs to an earlier build of the run id: then it is discarded).
"""

from __future__ import annotations

import logging
import time

import torch

from ncf_tasks import distributed, warm
from ncf_tasks.artifacts import MODELS, RunArtifacts, RunData, setup_torch
from ncf_tasks.config import Settings
from ncf_tasks.errors import NoDataError
from ncf_tasks.fitting import batch_size_for, best_ndcg, fit, initial_state, make_optimizer, new_model
from ncf_tasks.sampling import PositiveSet
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)


def init_model(kind: str, data: RunData, settings: Settings, run: RunArtifacts) -> torch.nn.Module:
    """A fresh model; NeuMF with pretraining is fused from this run's trained GMF and MLP (which must
    have been trained on the current training set: ``RunArtifacts.load_model`` refuses stale ones)."""
    parts = None
    if kind == "neumf" and settings.pretrain:
        for sub in ("gmf", "mlp"):
            if not run.has_model(sub):
                raise NoDataError(f"NeuMF with pretraining needs {run.uri(run.model(sub))}: train {sub} for run "
                                  f"{run.run_id} first, or set pretrain=false")
        parts = (run.load_model("gmf")[0], run.load_model("mlp")[0])
    return new_model(kind, data.n_users, data.n_items, settings, parts)


def run_train(settings: Settings, *, run_id: str, model: str) -> dict:
    """Stage: train one model of a run (resuming from its checkpoint), keep the best validation epoch."""
    if model not in MODELS:
        raise ValueError(f"model {model!r}: allowed values are {list(MODELS)}")
    if settings.train_procs > 1 and not distributed.in_worker():
        return distributed.launch(settings, run_id=run_id, model=model)  # torchrun: this function on each rank
    t_start = time.perf_counter()
    run = RunArtifacts(Storage(settings), run_id)
    settings = run.manifest().apply_profile(settings)  # the tuned profile build resolved for this run, if any
    rank = distributed.init(settings) if settings.train_procs > 1 else None
    device = setup_torch(settings)
    data = run.load_data(device)
    torch.manual_seed(settings.seed)
    record = run.manifest().warm  # build decided: start from production's model (warm.py), or None
    carried = warm.carry(model, data, settings, run, record) if record else None
    if carried:
        net, warm_info = carried
        settings = settings.replace(epochs=min(settings.epochs, settings.warm_epochs))
        train_data = warm.recent(run, data, record["since"])
    else:
        net, warm_info, train_data = init_model(model, data, settings, run), None, data
    net = net.to(device)
    opt = make_optimizer(model, net, settings, warm=carried is not None)
    leader = rank is None or rank.leader  # the one process that writes artifacts
    pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items, device)
    k = settings.eval_k

    ck = run.load_checkpoint(model)
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        log.info("%s: resuming from %s after epoch %d", model, run.uri(run.checkpoint(model)), state["epoch"])
    else:
        state = initial_state(net, data, k, model)

    batch = batch_size_for(settings, train_data.train_users.numel())
    log.info("%s: batch %d%s, %d positives x (1 + %d negatives) per epoch, device %s%s", model, batch,
             " (auto)" if not settings.batch_size else "", train_data.train_users.numel(), settings.train_negatives, device,
             f", {rank.world} data-parallel ranks" if rank else "")

    def checkpoint(row: dict, st: dict) -> None:
        if leader:
            run.save_checkpoint(model, {"model": net.state_dict(), "optimizer": opt.state_dict(), "state": st})

    fit(model, net, opt, train_data, pos, settings, device, state, on_epoch=checkpoint, rank=rank,
        train_net=distributed.wrap(net, rank, device) if rank else None)

    if state["bad_epochs"] >= settings.patience:
        stop_reason = f"early stop: no better validation HR@{k} for {settings.patience} epochs"
    else:
        stop_reason = f"reached epochs={settings.epochs}"
    log.info("%s: %s after epoch %d", model, stop_reason, state["epoch"])
    ndcg = best_ndcg(state, k)
    secs = time.perf_counter() - t_start
    fused = model == "neumf" and settings.pretrain and not warm_info
    uri = run.uri(run.model(model))
    if leader:
        run.save_model(model, state["best_state"], settings, epoch=state["best_epoch"],
                       validation={f"hr@{k}": state["best_hr"], f"ndcg@{k}": ndcg})
        run.save_history(model, {"model": model, "batch_size": batch, "procs": settings.train_procs,
                                 "epochs": state["history"], "best_epoch": state["best_epoch"],
                                 "stop_reason": stop_reason, "seconds": round(secs, 1),
                                 "init": {f"val_hr@{k}": state["init_hr"], f"val_ndcg@{k}": state["init_ndcg"],
                                          "fused": fused, "warm": warm_info}})
    log.info("%s: best validation HR@%d %.4f at epoch %d (start %.4f%s); saved %s (%.0fs)", model, k, state["best_hr"],
             state["best_epoch"], state["init_hr"], ", fused" if fused else "", uri, secs)
    mean_sps = sum(h["samples_per_s"] for h in state["history"]) / max(len(state["history"]), 1)
    result = {"run_id": run_id, "model": model, "device": str(device), "procs": settings.train_procs,
              "epochs": state["epoch"], "warm_from": (warm_info or {}).get("from_run"),
            "best_epoch": state["best_epoch"], "stop_reason": stop_reason,
            "start_val_hr": round(state["init_hr"], 5), f"start_val_ndcg@{k}": round(state["init_ndcg"], 5),
            "batch_size": batch, f"val_hr@{k}": round(state["best_hr"], 5),
            f"val_ndcg@{k}": round(ndcg, 5), "samples_per_s": round(mean_sps),
            "seconds": round(secs, 1), "uri": uri}
    if rank:
        distributed.finish(result, rank)
    return result
