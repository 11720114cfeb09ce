"""Stage ``train``: one model of a run (GMF, MLP, or NeuMF fused from this run's GMF and MLP), resumable.

The loop itself is ``fitting`` (shared with ``tune``). On CUDA the forward pass runs under bf16 autocast and
sampling happens on the GPU. On CPU the thread count is set once (``threads``, default all cores); the
sampler uses the same pool between steps, so nothing is oversubscribed.

Two phases when ``refit`` is on (the default, cold runs): selection (``fitting.fit``: epochs with validation,
early stopping, the best epoch kept), then the refit (``fitting.refit``: a fresh model, the chosen number of
epochs on train + validation positives). The refit model is ``<model>.pt``, what evaluate scores and publish
ships; the selected one is ``<model>_selected.pt``, and NeuMF's selection fuses the selected GMF and MLP
(so its validation figures stay clean) while its refit fuses the refit ones. A warm-started run (``warm``)
does not refit: it trains a few epochs on a recent window, and its selection is the model.

Artifacts (through ``artifacts.RunArtifacts``): ``<model>.pt`` (the model, settings, id-map keys, chosen
epoch, validation metrics of the selected epoch, refit epochs), ``<model>_history.json`` (per-epoch loss,
HR, NDCG, samples/s; the starting model's validation HR/NDCG: for NeuMF the fused start, so the gain of
fine-tuning shows; the refit's epochs) and ``<model>_checkpoint.pt`` (written every epoch of either phase;
a killed task resumes from it instead of starting over, unless it belongs to an earlier build of the run id:
then it is discarded).
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
from ncf_tasks.fitting import refit as refit_epochs
from ncf_tasks.sampling import PositiveSet
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)


def init_model(kind: str, data: RunData, settings: Settings, run: RunArtifacts, *,
               selected: bool = False) -> torch.nn.Module:
    """A fresh model; NeuMF with pretraining is fused from this run's trained GMF and MLP (which must
    have been trained on the current training set: ``RunArtifacts.load_model`` refuses stale ones):
    their selected models (``selected``: NeuMF's selection in a refit run) or their final ones."""
    parts = None
    if kind == "neumf" and settings.pretrain:
        for sub in ("gmf", "mlp"):
            if not run.has_model(sub):
                raise NoDataError(f"NeuMF with pretraining needs {run.uri(run.model(sub))}: train {sub} for run "
                                  f"{run.run_id} first, or set pretrain=false")
            if selected and not run.has_model(sub, selected):
                raise NoDataError(f"NeuMF with refit needs {run.uri(run.model(sub, selected))}, which {sub} writes "
                                  f"when trained with refit on: train {sub} for run {run.run_id} again, or set refit=false")
        parts = (run.load_model("gmf", selected=selected)[0], run.load_model("mlp", selected=selected)[0])
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
    refit = settings.refit and not carried
    ck = run.load_checkpoint(model)
    in_refit = ck is not None and "refit" in ck["state"]  # killed during the refit: selection is done
    net = opt = None  # the selection's model, built only when selection still has epochs to run
    if carried:
        net, warm_info = carried
        settings = settings.replace(epochs=min(settings.epochs, settings.warm_epochs))
        train_data = warm.recent(run, data, record["since"])
    else:
        warm_info, train_data = None, data
        if not in_refit:
            net = init_model(model, data, settings, run, selected=refit)
    if net is not None:
        net = net.to(device)
        opt = make_optimizer(model, net, settings, warm=carried is not None)
    leader = rank is None or rank.leader  # the one process that writes artifacts
    pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items, device)
    k = settings.eval_k

    state = ck["state"] if ck is not None else initial_state(net, data, k, model)
    if ck is not None and not in_refit:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        log.info("%s: resuming from %s after epoch %d", model, run.uri(run.checkpoint(model)), state["epoch"])

    batch = batch_size_for(settings, train_data.train_users.numel())
    log.info("%s: batch %d%s, %d positives x (1 + %d negatives) per epoch, device %s%s", model, batch,
             " (auto)" if not settings.batch_size else "", train_data.train_users.numel(), settings.train_negatives, device,
             f", {rank.world} data-parallel ranks" if rank else "")

    def checkpoint(row: dict, st: dict) -> None:
        if leader:  # net and opt: the phase's own (the refit rebinds them)
            run.save_checkpoint(model, {"model": net.state_dict(), "optimizer": opt.state_dict(), "state": st})

    if not in_refit:
        fit(model, net, opt, train_data, pos, settings, device, state, on_epoch=checkpoint, rank=rank,
            train_net=distributed.wrap(net, rank, device) if rank else None)

    if state["bad_epochs"] >= settings.patience:
        stop_reason = f"early stop: no better validation HR@{k} for {settings.patience} epochs"
    else:
        stop_reason = f"reached epochs={settings.epochs}"
    log.info("%s: %s after epoch %d", model, stop_reason, state["epoch"])
    validation = {f"hr@{k}": state["best_hr"], f"ndcg@{k}": best_ndcg(state, k)}
    final = state["best_state"]
    if refit:
        if not in_refit:
            if leader:
                run.save_model(model, state["best_state"], settings, epoch=state["best_epoch"], validation=validation,
                               selected=True)
            state["refit"] = {"epochs": state["best_epoch"], "epoch": 0, "history": [],
                              "positives": train_data.train_users.numel() + data.valid_users.numel()}
        torch.manual_seed(settings.seed)
        net = init_model(model, data, settings, run).to(device)  # NeuMF: fused from the refit GMF and MLP
        opt = make_optimizer(model, net, settings)
        if in_refit:
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            log.info("%s: resuming the refit from %s after epoch %d", model, run.uri(run.checkpoint(model)),
                     state["refit"]["epoch"])
        refit_epochs(model, net, opt, data, pos, settings, device, state, on_epoch=checkpoint, rank=rank,
                     train_net=distributed.wrap(net, rank, device) if rank else None)
        final = net.state_dict()

    ndcg = validation[f"ndcg@{k}"]
    secs = time.perf_counter() - t_start
    fused = model == "neumf" and settings.pretrain and not warm_info
    uri = run.uri(run.model(model))
    if leader:
        run.save_model(model, final, settings, epoch=state["best_epoch"], validation=validation,
                       refit=state.get("refit") and {x: state["refit"][x] for x in ("epochs", "positives")})
        run.save_history(model, {"model": model, "batch_size": batch, "procs": settings.train_procs,
                                 "epochs": state["history"], "best_epoch": state["best_epoch"],
                                 "stop_reason": stop_reason, "seconds": round(secs, 1), "refit": state.get("refit"),
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
            "refit_epochs": state["refit"]["epochs"] if refit else None,
            f"val_ndcg@{k}": round(ndcg, 5), "samples_per_s": round(mean_sps),
            "seconds": round(secs, 1), "uri": uri}
    if rank:
        distributed.finish(result, rank)
    return result
