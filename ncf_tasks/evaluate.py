"""Evaluate a run on its test candidates, compare with baselines and production, decide the gate.

Every model scores the same (users, 1 + negatives) candidate matrix in a few large batches: the
trained GMF, MLP and NeuMF, EASE^R (when its task fit one: ``train.train_ease``), item popularity (train
counts for its validation figure; train + validation counts for the test, as the other models are refit),
and the model now in production (the run named by ``recs/topk/_latest.json``, the authority;
``models/production.json`` is its record) re-scored through its own saved id maps — users or items it never
saw score -inf, i.e. rank last. The published model is NeuMF, or with ``publish_model=best`` the best on
validation (``gate.choose``); it is exported for publish, and the full catalogue is ranked for it too:
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

import numpy as np
import torch

from ncf_tasks import beyond, dashboard, gate, layout
from ncf_tasks.artifacts import EASE_MODEL, MODELS, POPULARITY, PUBLISHED_MODEL, RunArtifacts, id_translation
from ncf_tasks.baselines import Popularity
from ncf_tasks.config import Settings
from ncf_tasks.fitting import recency_weights
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
def full_catalog(net: torch.nn.Module, data: RunData, k: int, popularity: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Rank the test item among all items not seen in train/validation; coverage and popularity bias. Also
    returns the top-k lists of the test users (users × k item indices): what ``beyond`` measures."""
    n_items = data.n_items
    users, test_items = data.test_users, data.test_candidates[:, 0]
    pop_pct = torch.argsort(torch.argsort(popularity)).double() / max(n_items - 1, 1)  # 0 = least popular
    ranks, rec_pop, lists = [], [], []
    recommended = torch.zeros(n_items, dtype=torch.bool, device=users.device)
    for a, b, scores in masked_scores(net, users, n_items, exclude=data.seen_before_test()):
        target = scores.gather(1, test_items[a:b, None])
        ranks.append((scores >= target).sum(1) - 1)
        top = scores.topk(min(k, n_items), dim=1).indices
        recommended[top.reshape(-1)] = True
        rec_pop.append(pop_pct[top].mean(1))
        lists.append(top.cpu())
    recall, ndcg = hit_ndcg(torch.cat(ranks), k) if ranks else (0.0, 0.0)
    return {
        f"recall@{k}": recall,
        f"ndcg@{k}": ndcg,
        "coverage": float(recommended.double().mean()),
        "popularity_bias": float(torch.cat(rec_pop).mean()) if rec_pop else 0.0,
    }, (torch.cat(lists) if lists else torch.empty((0, min(k, n_items)), dtype=torch.int64))


def production_lists(storage: Storage, run: RunArtifacts, users: np.ndarray, k: int) -> np.ndarray | None:
    """The served table's top-k lists of this run's ``users`` (indices), translated to this run's item indices
    through the string ids: -1 pads a list the table does not hold, -2 is an item this run does not know. None
    when nothing is published, or what is published is this run."""
    import polars as pl

    pointer = storage.get_json(layout.latest_pointer(), default=None)
    if pointer is None or pointer["run_id"] == run.run_id:  # nothing served, or this run itself (re-evaluated)
        return None
    maps = run.id_maps()
    served = (
        storage.fetch_parquet(pointer["files"])
        .select("user_id", "rank", "item_id")
        .filter(pl.col("rank") <= k)
        .collect()
        .join(maps["users"], on="user_id")
        .join(maps["items"].select("item_idx", "item_id"), on="item_id", how="left")
        .with_columns(pl.col("item_idx").fill_null(-2))
        .filter(pl.col("user_idx").is_in(pl.Series(users).implode()))
    )
    out = np.full((len(users), k), -1, dtype=np.int64)
    rows = np.searchsorted(users, served["user_idx"].to_numpy())
    out[rows, served["rank"].to_numpy().astype(np.int64) - 1] = served["item_idx"].to_numpy()
    return out


def day_fallback_share(storage: Storage, run: RunArtifacts) -> float | None:
    """The share of the data day's active users the run has no list for (they get the fallback list)."""

    day = run.manifest().end_date
    if not day:
        return None
    keys = [o["key"] for o in storage.list(layout.lake_partition(day)) if layout.is_lake_part(o["key"])]
    if not keys:
        return None
    active = storage.read_parquet(keys, columns=["user_id"]).unique()
    if active.height == 0:
        return None
    listed = active.join(run.id_maps()["users"], on="user_id", how="semi").height
    return 1.0 - listed / active.height


def shipped_measures(storage: Storage, run: RunArtifacts, data: RunData, lists: np.ndarray, k: int) -> dict:
    """``beyond``'s measures of the published model's top-k lists (stability against the served table,
    concentration, novelty, the day's fallback share)."""
    users = data.test_users.cpu().numpy()
    seen_by = np.bincount(data.all_positives()[1].cpu().numpy(), minlength=data.n_items)  # users per item
    out: dict = beyond.list_measures(lists, data.n_items, seen_by, data.n_users)
    old = production_lists(storage, run, users, k)
    if old is not None:
        held = (old != -1).any(axis=1)
        out["overlap"], out["changed_all"] = beyond.overlap(lists[held], old[held])
        out["compared_users"] = int(held.sum())
    else:
        out["overlap"] = out["changed_all"] = None
        out["compared_users"] = 0
    out["fallback_share"] = day_fallback_share(storage, run)
    return out


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


def _ease_summary(record: dict | None, trained: bool, settings: Settings) -> dict:
    """What the report and the dashboard say of EASE^R: its λ search, or why the run has none."""
    if record and record.get("skipped"):
        return {"status": "skipped", "reason": record["skipped"]}
    if not trained:
        why = "its task did not run for this run" if settings.ease_max_items else "ease_max_items=0"
        return {"status": "absent", "reason": why}
    return {"status": "trained", **{k: (record or {}).get(k) for k in ("lambda", "tried", "seconds", "recency")}}


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
    arts: dict[str, dict] = {}
    for name in (*MODELS, EASE_MODEL):
        if name == PUBLISHED_MODEL or run.has_model(name):  # NeuMF must exist (NoDataError); the others may not
            nets[name], arts[name] = run.load_model(name, device)
    # popularity: counted on train for its validation figure, on train + validation (with refit) for the test
    val_pop = Popularity.fit(data.train_items, data.n_items).to(device)
    seen = data.with_validation() if settings.refit else data
    nets[POPULARITY] = Popularity.fit(seen.train_items, data.n_items).to(device)
    val_hr, val_ndcg = hit_ndcg(held_out_rank(score_candidates(val_pop, data.valid_users, data.valid_candidates)), k)
    arts[POPULARITY] = {"epoch": 0, "validation": {f"hr@{k}": val_hr, f"ndcg@{k}": val_ndcg}}
    run.save_model(
        POPULARITY, nets[POPULARITY].state_dict(), settings, epoch=0, validation=arts[POPULARITY]["validation"]
    )
    for name, net in nets.items():
        art = arts[name]
        hr, ndcg = hit_ndcg(held_out_rank(score_candidates(net, users, cands)), k)
        models[name] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "val_hr": art["validation"].get(f"hr@{k}")}
        if name in MODELS:
            models[name]["best_epoch"] = art["epoch"]
        if name == EASE_MODEL:
            models[name]["lambda"] = art["validation"].get("lambda")
    ease = run.ease_record()
    published = gate.choose(settings, {m: v["val_hr"] for m, v in models.items()})
    if published == POPULARITY:  # the saved record (trained_at, digest, sizes) is what the export names
        arts[POPULARITY] = run.load_model_artifact(POPULARITY)
    # what publish scores, without torch, checked by its SHA-256
    exported = {published: run.save_serving(published, nets[published], arts[published])}
    prod = served_model(storage)
    if prod and prod.get("run_id") != run_id:
        scores = rescore_production(storage, prod, run, device, users, cands)
        hr, ndcg = hit_ndcg(held_out_rank(scores), k)
        models["production"] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "run_id": prod["run_id"], "model": prod["model"]}
    catalog, lists = full_catalog(nets[published], data, k, nets[POPULARITY].counts.double())
    whole = data.with_everything()  # tomorrow's fallback: recency-weighted popularity over the whole window
    fallback = Popularity.fit(whole.train_items, data.n_items, recency_weights(whole, settings)).counts
    run.write_fallback(fallback.double().cpu().numpy())
    beyond_measures = shipped_measures(storage, run, data, lists.numpy(), k)
    manifest = run.manifest()
    metrics = {
        "run_id": run_id,
        "k": k,
        "test_users": int(users.numel()),
        "candidates": int(cands.shape[1]),
        "models": models,
        "published_model": published,
        "ease": _ease_summary(ease, run.has_model(EASE_MODEL), settings),
        "full_catalog": catalog,
        "beyond": beyond_measures,
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
        "gate: %s %s — %s",
        "PUBLISH" if metrics["gate"]["publish"] else "REJECT",
        published,
        "; ".join(metrics["gate"]["reasons"]),
    )
    for notice in metrics["gate"]["notices"]:
        log.warning("gate notice: %s", notice)
    if metrics["ease"]["status"] != "trained":
        log.warning("EASE^R: %s (%s)", metrics["ease"]["status"], metrics["ease"]["reason"])
    log.info("report: %s", report_uri)
    return {
        "run_id": run_id,
        "k": k,
        "metrics": {
            m: {kk: round(vv, 5) if isinstance(vv, float) else vv for kk, vv in v.items()} for m, v in models.items()
        },
        "full_catalog": {kk: round(vv, 5) for kk, vv in catalog.items()},
        "beyond": {kk: round(vv, 5) if isinstance(vv, float) else vv for kk, vv in beyond_measures.items()},
        "published_model": published,
        "gate": metrics["gate"],
        "training": training,
        "report_uri": report_uri,
        "metrics_uri": metrics_uri,
        "dashboard_uri": dashboard_uri,
        "seconds": round(time.perf_counter() - t0, 2),
    }
