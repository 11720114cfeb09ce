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

With ``train_procs`` > 1 the stage launches that many ranks with torch's elastic launcher (``launch``): each
rank runs this stage's steps on its share of every batch (``distributed``), rank 0 writes, and its result
is the task's. The ranks get the task's settings in memory (pickled to the spawned processes: no file
holds the storage credentials). A rank's own ``NcfError`` fails the task as itself (a ``StorageError``
stays retryable); a rank that dies otherwise fails it with ``DistributedTrainingFailed``. The ranks are
started with ``spawn``: the launching program's main module must be import-safe (``if __name__ ==
"__main__"``), as Airflow's, pytest's and the CLI's are.

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
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ncf_tasks import distributed, warm
from ncf_tasks.artifacts import EASE_MODEL, MODELS, RunArtifacts
from ncf_tasks.config import Settings
from ncf_tasks.errors import CATALOGUE, ConfigError, DistributedTrainingFailed, NoDataError
from ncf_tasks.fitting import (
    batch_size_for,
    best_ndcg,
    epoch_limits,
    fit,
    initial_state,
    make_optimizer,
    new_model,
    recency_weights,
    refit,
)
from ncf_tasks.rundata import RunData, setup_torch
from ncf_tasks.sampling import PositiveSet
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)


def init_model(
    kind: str, data: RunData, settings: Settings, run: RunArtifacts, *, selected: bool = False
) -> torch.nn.Module:
    """A fresh model; NeuMF with pretraining is fused from this run's trained GMF and MLP (which must
    have been trained on the current training set: ``RunArtifacts.load_model`` refuses stale ones):
    their selected models (``selected``: NeuMF's selection in a refit run) or their final ones."""
    parts = None
    if kind == "neumf" and settings.pretrain:
        for sub in ("gmf", "mlp"):
            if not run.has_model(sub):
                raise NoDataError(
                    f"NeuMF with pretraining needs {run.uri(run.model(sub))}: train {sub} for run "
                    f"{run.run_id} first, or set pretrain=false"
                )
            if selected and not run.has_model(sub, selected):
                raise NoDataError(
                    f"NeuMF with refit needs {run.uri(run.model(sub, selected))}, which {sub} writes "
                    f"when trained with refit on: train {sub} for run {run.run_id} again, or set refit=false"
                )
        parts = (run.load_model("gmf", selected=selected)[0], run.load_model("mlp", selected=selected)[0])
    return new_model(kind, data.n_users, data.n_items, settings, parts)


def run_train(settings: Settings, *, run_id: str, model: str) -> dict:
    """Stage: train one model of a run (resuming from its checkpoint): selection on validation, then the refit.
    ``model="ease"``: EASE^R, closed form (``train_ease``)."""
    if model == EASE_MODEL:
        return train_ease(settings, run_id=run_id)
    if model not in MODELS:
        raise ConfigError(f"model {model!r}: allowed values are {[*MODELS, EASE_MODEL]}")
    if settings.train_procs > 1 and not distributed.in_worker():
        return launch(settings, run_id=run_id, model=model)
    t_start = time.perf_counter()
    job = _open(settings, run_id, model)
    try:
        sel = _select(job)
        final = _refit(job, sel) if sel.refit else sel.state["best_state"]
        return _save(job, sel, final, time.perf_counter() - t_start)
    finally:
        if job.rank:
            distributed.leave()


@dataclass
class _Job:
    """What every step of one model's training reads: the run, its data and where the work happens."""

    model: str
    run: RunArtifacts
    settings: Settings  # with the run's tuned profile applied
    device: torch.device
    data: RunData
    pos: PositiveSet
    rank: distributed.Rank | None
    checkpoint: dict | None  # the state of a killed earlier try, bound to this training set

    @property
    def leader(self) -> bool:
        """The one process that writes artifacts (rank 0, or the only one)."""
        return self.rank is None or self.rank.leader

    def train_net(self, net: torch.nn.Module) -> torch.nn.Module | None:
        return distributed.wrap(net, self.rank, self.device) if self.rank else None

    def saver(self, net: torch.nn.Module, opt: torch.optim.Optimizer) -> Callable[[dict, dict], None]:
        """The per-epoch checkpoint of a phase's model and optimiser (written by the leader only)."""

        def save(row: dict, state: dict) -> None:
            if self.leader:
                self.run.save_checkpoint(
                    self.model, {"model": net.state_dict(), "optimizer": opt.state_dict(), "state": state}
                )

        return save


@dataclass
class _Selection:
    """The selection phase's outcome: the loop state (best epoch, history; ``refit`` progress once it starts)."""

    state: dict
    settings: Settings  # a warm start trains fewer epochs
    refit: bool
    warm_info: dict | None
    batch: int
    stop_reason: str
    validation: dict


def _open(settings: Settings, run_id: str, model: str) -> _Job:
    run = RunArtifacts(Storage(settings), run_id)
    settings = run.manifest().apply_profile(settings)  # the tuned profile build resolved for this run, if any
    rank = distributed.init(settings) if settings.train_procs > 1 else None
    device = setup_torch(settings)
    data = run.load_data(device)
    torch.manual_seed(settings.seed)
    pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items, device)
    return _Job(model, run, settings, device, data, pos, rank, run.load_checkpoint(model))


def _select(job: _Job) -> _Selection:
    """Selection: a fresh (or fused, or carried from production) model trained with validation and early
    stopping; the best epoch kept. Skipped when a killed try had finished it (its checkpoint is in the refit)."""
    model, run, settings, data, k = job.model, job.run, job.settings, job.data, job.settings.eval_k
    record = run.manifest().warm  # build decided: start from production's model (warm.py), or None
    carried = warm.carry(model, data, settings, run, record) if record else None
    do_refit = settings.refit and not carried
    ck = job.checkpoint
    in_refit = ck is not None and "refit" in ck["state"]  # killed during the refit: selection is done
    net = opt = None  # the selection's model, built only when selection still has epochs to run
    if carried:
        net, warm_info = carried
        # warm_epochs counts whole passes over the recent window: the shorter epochs are fine-tuning's from a fused start
        settings = settings.replace(epochs=min(settings.epochs, settings.warm_epochs), neumf_epoch_fraction=1.0)
        train_data = warm.recent(run, data, record["since"])
    else:
        warm_info, train_data = None, data
        if not in_refit:
            net = init_model(model, data, settings, run, selected=do_refit)
    if net is not None:
        net = net.to(job.device)
        opt = make_optimizer(model, net, settings, warm=carried is not None)
    state = ck["state"] if ck is not None else initial_state(net, data, k, model)
    if ck is not None and not in_refit:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        log.info("%s: resuming from %s after epoch %d", model, run.uri(run.checkpoint(model)), state["epoch"])

    batch = batch_size_for(settings, train_data.train_users.numel())
    log.info(
        "%s: batch %d%s, %d positives x (1 + %d negatives) per epoch, device %s%s",
        model, batch, " (auto)" if not settings.batch_size else "", train_data.train_users.numel(),
        settings.train_negatives, job.device, f", {job.rank.world} data-parallel ranks" if job.rank else "",
    )  # fmt: skip
    if not in_refit:
        fit(model, net, opt, train_data, job.pos, settings, job.device, state, on_epoch=job.saver(net, opt),
            rank=job.rank, train_net=job.train_net(net))  # fmt: skip

    patience = epoch_limits(model, settings)[1]
    if state["bad_epochs"] >= patience:
        stop_reason = f"early stop: no better validation HR@{k} for {patience} epochs"
    else:
        stop_reason = f"reached epochs={settings.epochs}"
    log.info("%s: %s after epoch %d", model, stop_reason, state["epoch"])
    validation = {f"hr@{k}": state["best_hr"], f"ndcg@{k}": best_ndcg(state, k)}
    if do_refit and not in_refit:
        if job.leader:
            run.save_model(model, state["best_state"], settings, epoch=state["best_epoch"], validation=validation,
                           selected=True)  # fmt: skip
        state["refit"] = {
            "epochs": state["best_epoch"],
            "epoch": 0,
            "history": [],
            "positives": train_data.train_users.numel() + data.valid_users.numel(),
        }
    return _Selection(state, settings, do_refit, warm_info, batch, stop_reason, validation)


def _refit(job: _Job, sel: _Selection) -> dict:
    """The refit: a fresh model (NeuMF fused from the refit GMF and MLP), the chosen number of epochs on train +
    validation positives; resumed from the checkpoint of a try killed during it. Returns its weights."""
    model, settings, ck = job.model, sel.settings, job.checkpoint
    torch.manual_seed(settings.seed)
    net = init_model(model, job.data, settings, job.run).to(job.device)
    opt = make_optimizer(model, net, settings)
    if ck is not None and "refit" in ck["state"] and ck["state"]["refit"]["epoch"] > 0:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        log.info("%s: resuming the refit from %s after epoch %d", model, job.run.uri(job.run.checkpoint(model)),
                 sel.state["refit"]["epoch"])  # fmt: skip
    refit(model, net, opt, job.data, job.pos, settings, job.device, sel.state, on_epoch=job.saver(net, opt),
          rank=job.rank, train_net=job.train_net(net))  # fmt: skip
    return net.state_dict()


def _save(job: _Job, sel: _Selection, final: dict, secs: float) -> dict:
    """The model, its history and the task's result (the leader writes)."""
    model, run, settings, state, k = job.model, job.run, sel.settings, sel.state, sel.settings.eval_k
    fused = model == "neumf" and settings.pretrain and not sel.warm_info
    uri = run.uri(run.model(model))
    if job.leader:
        run.save_model(model, final, settings, epoch=state["best_epoch"], validation=sel.validation,
                       refit=state.get("refit") and {x: state["refit"][x] for x in ("epochs", "positives")})  # fmt: skip
        run.save_history(
            model,
            {
                "model": model,
                "batch_size": sel.batch,
                "procs": settings.train_procs,
                "epochs": state["history"],
                "best_epoch": state["best_epoch"],
                "stop_reason": sel.stop_reason,
                "seconds": round(secs, 1),
                "refit": state.get("refit"),
                "init": {
                    f"val_hr@{k}": state["init_hr"],
                    f"val_ndcg@{k}": state["init_ndcg"],
                    "fused": fused,
                    "warm": sel.warm_info,
                },
            },
        )
    log.info(
        "%s: best validation HR@%d %.4f at epoch %d (start %.4f%s); saved %s (%.0fs)",
        model, k, state["best_hr"], state["best_epoch"], state["init_hr"], ", fused" if fused else "", uri, secs,
    )  # fmt: skip
    mean_sps = sum(h["samples_per_s"] for h in state["history"]) / max(len(state["history"]), 1)
    return {
        "run_id": run.run_id,
        "model": model,
        "device": str(job.device),
        "procs": settings.train_procs,
        "epochs": state["epoch"],
        "warm_from": (sel.warm_info or {}).get("from_run"),
        "best_epoch": state["best_epoch"],
        "stop_reason": sel.stop_reason,
        "start_val_hr": round(state["init_hr"], 5),
        f"start_val_ndcg@{k}": round(state["init_ndcg"], 5),
        "batch_size": sel.batch,
        f"val_hr@{k}": round(state["best_hr"], 5),
        "refit_epochs": state["refit"]["epochs"] if sel.refit else None,
        f"val_ndcg@{k}": round(sel.validation[f"ndcg@{k}"], 5),
        "samples_per_s": round(mean_sps),
        "seconds": round(secs, 1),
        "uri": run.uri(run.model(model)),
    }


def train_ease(settings: Settings, *, run_id: str) -> dict:
    """EASE^R of a run (``baselines.fit_ease``): λ on validation, refit on train + validation when ``refit`` is
    on; saved as ``ease.pt`` with ``ease_history.json`` (λ tried, seconds). A catalogue above ``ease_max_items``
    is skipped: the history says why, any earlier ``ease.pt`` of the run is removed, and evaluate reports it.
    One process (no ``train_procs`` ranks): the solve is a handful of dense matrix operations that use every
    core of the worker (or the GPU) already. Recency weights apply with ``ease_recency``."""
    from ncf_tasks.baselines import fit_ease

    t0 = time.perf_counter()
    run = RunArtifacts(Storage(settings), run_id)
    settings = run.manifest().apply_profile(settings)
    n_items, k = run.manifest().n_items, settings.eval_k
    if n_items > settings.ease_max_items:
        reason = (
            f"{n_items:,} items > ease_max_items={settings.ease_max_items:,} (EASE^R holds items x items "
            f"matrices, ~{24 * n_items**2 / 1e9:.1f} GB at this size)"
        )
        log.warning("ease: skipped for run %s: %s", run_id, reason)
        run.storage.delete([run.key(run.model(EASE_MODEL))])
        run.save_history(EASE_MODEL, {"model": EASE_MODEL, "skipped": reason})
        return {"run_id": run_id, "model": EASE_MODEL, "skipped": reason}
    device = setup_torch(settings)
    data = run.load_data(device)
    weigh = settings if settings.ease_recency else settings.replace(recency_boost=0.0)
    net, info = fit_ease(
        data, k, settings.ease_lambda_min, settings.ease_lambda_max, settings.refit, lambda d: recency_weights(d, weigh)
    )
    validation = {f"hr@{k}": info["validation"][f"val_hr@{k}"], f"ndcg@{k}": info["validation"][f"val_ndcg@{k}"]}
    refit_record = {"epochs": 0, "positives": int(net.indices.numel())} if info["refit"] else None
    uri = run.save_model(
        EASE_MODEL, net.state_dict(), settings, epoch=0, validation={**validation, "lambda": info["lambda"]},
        refit=refit_record,
    )  # fmt: skip
    secs = round(time.perf_counter() - t0, 1)
    run.save_history(EASE_MODEL, {"model": EASE_MODEL, "skipped": None, **info, "recency": settings.ease_recency,
                                  "device": str(device), "seconds": secs})  # fmt: skip
    return {
        "run_id": run_id,
        "model": EASE_MODEL,
        "device": str(device),
        "lambda": info["lambda"],
        f"val_hr@{k}": validation[f"hr@{k}"],
        f"val_ndcg@{k}": validation[f"ndcg@{k}"],
        "refit": info["refit"],
        "seconds": secs,
        "uri": uri,
    }


def launch(settings: Settings, *, run_id: str, model: str) -> dict:
    """Train on ``settings.train_procs`` ranks on this worker (torch's elastic launcher, one node); returns rank
    0's result. Each rank runs ``run_train`` with these settings, passed in memory; on CPU each gets
    ``cores // train_procs`` threads unless ``threads`` is set."""
    import os

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    n = settings.train_procs
    if settings.torch_device == "cpu" and not settings.threads:
        settings = settings.replace(threads=max(1, (os.cpu_count() or 1) // n))  # each rank's share of the cores
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=f"ncf-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")  # fmt: skip
    log.info("%s: data-parallel training on %d %s process(es)", model, n, settings.torch_device)
    what = f"distributed training of {model} for run {run_id} on {n} processes"
    try:
        results = elastic_launch(config, _rank_main)(settings, run_id, model)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = failure.message.get("message", "") if isinstance(failure.message, dict) else str(failure.message)
        name, _, text = message.partition(": ")
        cls = CATALOGUE.get(name)
        if cls is not None and cls is not DistributedTrainingFailed:
            raise cls(f"{text} (rank {rank} of the {what})") from exc  # the rank's own error: same exit, same retry
        raise DistributedTrainingFailed(
            f"{what} failed: rank {rank} exited with code {failure.exitcode}"
            + (f" ({message.splitlines()[0][:300]})" if message else "")
            + "; the ranks' errors are above"
        ) from exc
    return results[0]


def _rank_main(settings: Settings, run_id: str, model: str) -> dict:
    """A rank's entry point (a spawned process of ``launch``)."""
    import os

    logging.basicConfig(
        level=logging.INFO,
        format=f"[rank {os.environ.get('RANK', '?')}] %(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return run_train(settings, run_id=run_id, model=model)
