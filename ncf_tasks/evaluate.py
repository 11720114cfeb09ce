"""Evaluate a run on its test candidates, compare with baselines and production, decide the gate.

Every model scores the same (users, 1 + negatives) candidate matrix in a few large batches: the
trained GMF, MLP and NeuMF, item popularity (train counts), and the model now in production (the run
named by ``recs/topk/_latest.json``, the authority; ``models/production.json`` is its record)
re-scored through its own saved id maps — users or items it never saw score -inf, i.e. rank last. For the published model (NeuMF) the full catalogue is ranked too:
Recall@K / NDCG@K of the test item among all items the user has not interacted with in train or
validation, catalogue coverage of the top-K lists, and their popularity bias (mean popularity
percentile of recommended items; 0.5 = like a random pick, 1.0 = only the most popular item).

The gate decision (``gate.decide``) is made here and stored with the metrics; ``publish`` enforces it.
Writes the run's ``metrics.json`` and ``report.html`` (``artifacts.RunArtifacts``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import torch

from ncf_tasks import dashboard, gate, layout
from ncf_tasks.artifacts import MODELS, PUBLISHED_MODEL, RunArtifacts, id_translation
from ncf_tasks.config import Settings
from ncf_tasks.metrics import held_out_rank, hit_ndcg, score_candidates
from ncf_tasks.report import render_report, training_summary
from ncf_tasks.rundata import RunData, setup_torch
from ncf_tasks.scoring import masked_scores
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)


@torch.no_grad()
def rescore_production(
    storage: Storage, prod: dict, run: RunArtifacts, device: torch.device, users: torch.Tensor, candidates: torch.Tensor
) -> torch.Tensor:
    """Scores of the production model on this run's candidates, through the production run's id maps."""
    net, art = RunArtifacts(storage, prod["run_id"]).load_model(
        prod.get("model", PUBLISHED_MODEL), device, current=False
    )
    ours = run.id_maps()
    theirs = {f: storage.read_parquet(art["id_maps"][f]) for f in ("users", "items")}
    u_map = torch.from_numpy(id_translation(ours["users"], theirs["users"])).to(device)
    i_map = torch.from_numpy(id_translation(ours["items"], theirs["items"])).to(device)
    pu = u_map[users][:, None].expand_as(candidates)
    pi = i_map[candidates]
    known = (pu >= 0) & (pi >= 0)
    scores = torch.full(candidates.shape, float("-inf"), device=device)
    if known.any():
        scores[known] = score_candidates(net, pu[known], pi[known][:, None])[:, 0]
    return scores


@torch.no_grad()
def full_catalog(net: torch.nn.Module, data: RunData, k: int, popularity: torch.Tensor) -> dict:
    """Rank the test item among all items not seen in train/validation; coverage and popularity bias."""
    n_items = data.n_items
    users, test_items = data.test_users, data.test_candidates[:, 0]
    pop_pct = torch.argsort(torch.argsort(popularity)).double() / max(n_items - 1, 1)  # 0 = least popular
    ranks, rec_pop = [], []
    recommended = torch.zeros(n_items, dtype=torch.bool, device=users.device)
    for a, b, scores in masked_scores(net, users, n_items, exclude=data.seen_before_test()):
        target = scores.gather(1, test_items[a:b, None])
        ranks.append((scores >= target).sum(1) - 1)
        top = scores.topk(min(k, n_items), dim=1).indices
        recommended[top.reshape(-1)] = True
        rec_pop.append(pop_pct[top].mean(1))
    recall, ndcg = hit_ndcg(torch.cat(ranks), k) if ranks else (0.0, 0.0)
    return {
        f"recall@{k}": recall,
        f"ndcg@{k}": ndcg,
        "coverage": float(recommended.double().mean()),
        "popularity_bias": float(torch.cat(rec_pop).mean()) if rec_pop else 0.0,
    }


def served_model(storage: Storage) -> dict | None:
    """The model behind the table readers are served: the pointer's run (``publish`` swaps the pointer
    first and writes ``models/production.json`` after it, so the pointer is the authority)."""
    pointer, _ = storage.get_json_versioned(layout.latest_pointer())
    if pointer is None:
        return None
    record = storage.get_json(layout.production_pointer(), default=None)
    if not record or record.get("run_id") != pointer["run_id"]:
        log.warning(
            "%s names run %s but %s names %s (a publish stopped between the two): comparing with the served run %s",
            storage.uri(layout.production_pointer()),
            (record or {}).get("run_id"),
            storage.uri(layout.latest_pointer()),
            pointer["run_id"],
            pointer["run_id"],
        )
    return {"run_id": pointer["run_id"], "model": pointer.get("model", PUBLISHED_MODEL)}


def run_evaluate(settings: Settings, *, run_id: str) -> dict:
    """Stage: metrics.json, report.html and the gate decision of a run."""
    t0 = time.perf_counter()
    storage = Storage(settings)
    run = RunArtifacts(storage, run_id)
    device = setup_torch(settings)
    data = run.load_data(device)
    k = settings.eval_k
    users, cands = data.test_users, data.test_candidates
    models: dict[str, dict] = {}
    nets: dict[str, torch.nn.Module] = {}
    for name in MODELS:
        if name == PUBLISHED_MODEL or run.has_model(name):  # the published model must exist (NoDataError)
            net, art = run.load_model(name, device)
            nets[name] = net
            if name == PUBLISHED_MODEL:  # what publish scores, without torch, checked by its SHA-256
                exported = {name: run.save_serving(name, net, art)}
            hr, ndcg = hit_ndcg(held_out_rank(score_candidates(net, users, cands)), k)
            models[name] = {
                f"hr@{k}": hr,
                f"ndcg@{k}": ndcg,
                "best_epoch": art["epoch"],
                "val_hr": art["validation"].get(f"hr@{k}"),
            }
    popularity = torch.bincount(data.train_items, minlength=data.n_items).double()
    hr, ndcg = hit_ndcg(held_out_rank(popularity[cands]), k)
    models["popularity"] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg}
    prod = served_model(storage)
    if prod and prod.get("run_id") != run_id:
        scores = rescore_production(storage, prod, run, device, users, cands)
        hr, ndcg = hit_ndcg(held_out_rank(scores), k)
        models["production"] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "run_id": prod["run_id"]}
    catalog = full_catalog(nets[PUBLISHED_MODEL], data, k, popularity)
    manifest = run.manifest()
    metrics = {
        "run_id": run_id,
        "k": k,
        "test_users": int(users.numel()),
        "candidates": int(cands.shape[1]),
        "models": models,
        "full_catalog": catalog,
        "data": manifest.report,
        "serving": exported,
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    metrics["gate"] = gate.decide(settings, metrics)
    histories = run.histories()
    training = training_summary(histories, k)
    metrics["training"] = training
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    metrics_uri = run.write_metrics(metrics)
    warm_from = RunArtifacts(storage, manifest.warm["from_run"]).histories() if manifest.warm else None
    report_uri = run.write_report(render_report(metrics, histories, manifest.to_dict(), warm_from))
    dashboard_uri = dashboard.rebuild(storage)
    table = " | ".join(f"{m} HR@{k} {v[f'hr@{k}']:.4f} NDCG@{k} {v[f'ndcg@{k}']:.4f}" for m, v in models.items())
    log.info("evaluation of %s: %s", run_id, table)
    log.info(
        "gate: %s — %s", "PUBLISH" if metrics["gate"]["publish"] else "REJECT", "; ".join(metrics["gate"]["reasons"])
    )
    log.info("report: %s", report_uri)
    return {
        "run_id": run_id,
        "k": k,
        "metrics": {
            m: {kk: round(vv, 5) if isinstance(vv, float) else vv for kk, vv in v.items()} for m, v in models.items()
        },
        "full_catalog": {kk: round(vv, 5) for kk, vv in catalog.items()},
        "gate": metrics["gate"],
        "training": training,
        "report_uri": report_uri,
        "metrics_uri": metrics_uri,
        "dashboard_uri": dashboard_uri,
        "seconds": round(time.perf_counter() - t0, 2),
    }
