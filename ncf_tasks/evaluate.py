"""Evaluate a run on its test candidates, compare with baselines and production, decide the gate.

Every model scores the same (users, 1 + negatives) candidate matrix in a few large batches: the
trained GMF, MLP and NeuMF, item popularity (train counts), and the model now in production
(``models/production.json``) re-scored through its own saved id maps — users or items it never saw
score -inf, i.e. rank last. For the published model (NeuMF) the full catalogue is ranked too:
Recall@K / NDCG@K of the test item among all items the user has not interacted with in train or
validation, catalogue coverage of the top-K lists, and their popularity bias (mean popularity
percentile of recommended items; 0.5 = like a random pick, 1.0 = only the most popular item).

Gate: publish when NeuMF's HR@K beats popularity by ``gate_min_lift`` and is not worse than
production by more than ``gate_tolerance`` (no production yet: only the first condition).
``force_publish`` overrides a rejection and is recorded. Writes ``runs/<run_id>/metrics.json`` and
``runs/<run_id>/report.html``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import torch

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.metrics import held_out_rank, hit_ndcg, score_candidates
from ncf_tasks.models import SCORE_CHUNK_CELLS, build_model, pair_width
from ncf_tasks.rundata import RunData, load_run, load_torch
from ncf_tasks.storage import Storage
from ncf_tasks.train import setup_torch

log = logging.getLogger(__name__)
PUBLISHED_MODEL = "neumf"


def load_model(storage: Storage, run_id: str, model: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    art = load_torch(storage, layout.run_prefix(run_id) + f"{model}.pt")
    net = build_model(model, art["n_users"], art["n_items"], art["factors"], tuple(art["mlp_layers"]))
    net.load_state_dict(art["state_dict"])
    return net.to(device).eval(), art


def id_translation(ours, theirs) -> np.ndarray:
    """For each of our indices, the other run's index of the same string id, or -1 if it never saw it."""
    import polars as pl

    key = ours.columns[1]  # user_id / item_id
    idx = ours.columns[0]
    joined = ours.join(theirs.rename({theirs.columns[0]: "_their"}), on=key, how="left").sort(idx)
    return joined["_their"].fill_null(-1).cast(pl.Int64).to_numpy()


@torch.no_grad()
def rescore_production(storage: Storage, prod: dict, data: RunData, device: torch.device,
                       users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Scores of the production model on this run's candidates, through the production run's id maps."""
    run_id = prod["run_id"]
    net, art = load_model(storage, run_id, prod.get("model", PUBLISHED_MODEL), device)
    ours = {f: storage.read_parquet(data.manifest["files"][f]) for f in ("users", "items")}
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
def full_catalog(net: torch.nn.Module, data: RunData, k: int, popularity: torch.Tensor,
                 chunk_cells: int = SCORE_CHUNK_CELLS) -> dict:
    """Rank the test item among all items not seen in train/validation; coverage and popularity bias."""
    device = data.test_users.device
    n_items = data.n_items
    users, test_items = data.test_users, data.test_candidates[:, 0]
    seen_u = torch.cat([data.train_users, data.valid_users])
    seen_i = torch.cat([data.train_items, data.valid_candidates[:, 0]])
    order = torch.argsort(seen_u)
    seen_u, seen_i = seen_u[order], seen_i[order]
    pop_pct = torch.argsort(torch.argsort(popularity)).double() / max(n_items - 1, 1)  # 0 = least popular
    step = max(1, chunk_cells // (max(n_items, 1) * pair_width(net)))  # bounded memory per chunk
    ranks, recommended = [], torch.zeros(n_items, dtype=torch.bool, device=device)
    rec_pop = []
    all_items = torch.arange(n_items, device=device)
    for s in range(0, users.numel(), step):
        u = users[s:s + step]
        scores = net.score_all(u, all_items).float()
        row_of = torch.full((data.n_users,), -1, dtype=torch.int64, device=device)
        row_of[u] = torch.arange(u.numel(), device=device)
        lo = torch.searchsorted(seen_u, u.min())
        hi = torch.searchsorted(seen_u, u.max(), right=True)
        su, si = seen_u[lo:hi], seen_i[lo:hi]
        rows = row_of[su]
        keep = rows >= 0
        scores[rows[keep], si[keep]] = float("-inf")
        t = test_items[s:s + step]
        target = scores.gather(1, t[:, None])
        ranks.append((scores >= target).sum(1) - 1)
        top = scores.topk(k, dim=1).indices
        recommended[top.reshape(-1)] = True
        rec_pop.append(pop_pct[top].mean(1))
    rank = torch.cat(ranks)
    recall, ndcg = hit_ndcg(rank, k)
    return {f"recall@{k}": recall, f"ndcg@{k}": ndcg, "coverage": float(recommended.double().mean()),
            "popularity_bias": float(torch.cat(rec_pop).mean())}


def gate(settings: Settings, metrics: dict, k: int) -> dict:
    new = metrics["models"][PUBLISHED_MODEL][f"hr@{k}"]
    pop = metrics["models"]["popularity"][f"hr@{k}"]
    reasons, ok = [], True
    if new >= pop + settings.gate_min_lift:
        reasons.append(f"NeuMF HR@{k} {new:.4f} >= popularity {pop:.4f} + lift {settings.gate_min_lift}")
    else:
        ok = False
        reasons.append(f"NeuMF HR@{k} {new:.4f} < popularity {pop:.4f} + required lift {settings.gate_min_lift}")
    prod = metrics["models"].get("production")
    if prod is None:
        reasons.append("no model in production yet")
    elif new >= prod[f"hr@{k}"] - settings.gate_tolerance:
        reasons.append(f"NeuMF HR@{k} {new:.4f} >= production {prod[f'hr@{k}']:.4f} - tolerance {settings.gate_tolerance}")
    else:
        ok = False
        reasons.append(f"NeuMF HR@{k} {new:.4f} < production {prod[f'hr@{k}']:.4f} - tolerance {settings.gate_tolerance}")
    forced = settings.force_publish and not ok
    if forced:
        reasons.append("FORCED by operator (force_publish=true) despite the rejection above")
    return {"passed": ok, "publish": ok or settings.force_publish, "forced": forced, "reasons": reasons}


def run_evaluate(settings: Settings, *, run_id: str) -> dict:
    """Stage: metrics.json, report.html and the gate decision of a run."""
    from ncf_tasks.report import render_report

    t0 = time.perf_counter()
    storage = Storage(settings)
    device = setup_torch(settings)
    data = load_run(storage, run_id, device)
    prefix = layout.run_prefix(run_id)
    k = settings.eval_k
    users, cands = data.test_users, data.test_candidates
    models: dict[str, dict] = {}
    nets: dict[str, torch.nn.Module] = {}
    for name in ("gmf", "mlp", "neumf"):
        if storage.exists(f"{prefix}{name}.pt"):
            net, art = load_model(storage, run_id, name, device)
            nets[name] = net
            hr, ndcg = hit_ndcg(held_out_rank(score_candidates(net, users, cands)), k)
            models[name] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "best_epoch": art["epoch"],
                            "val_hr": art["validation"].get(f"hr@{k}")}
    if PUBLISHED_MODEL not in models:
        raise FileNotFoundError(f"{storage.uri(prefix + PUBLISHED_MODEL + '.pt')} is missing: train neumf first")
    popularity = torch.bincount(data.train_items, minlength=data.n_items).double()
    hr, ndcg = hit_ndcg(held_out_rank(popularity[cands]), k)
    models["popularity"] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg}
    prod = storage.get_json(layout.production_pointer(), default=None)
    if prod and prod.get("run_id") != run_id:
        scores = rescore_production(storage, prod, data, device, users, cands)
        hr, ndcg = hit_ndcg(held_out_rank(scores), k)
        models["production"] = {f"hr@{k}": hr, f"ndcg@{k}": ndcg, "run_id": prod["run_id"]}
    catalog = full_catalog(nets[PUBLISHED_MODEL], data, k, popularity)
    metrics = {"run_id": run_id, "k": k, "test_users": int(users.numel()), "candidates": int(cands.shape[1]),
               "models": models, "full_catalog": catalog, "data": data.manifest["report"],
               "evaluated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    metrics["gate"] = gate(settings, metrics, k)
    storage.put_json(prefix + "metrics.json", metrics)
    histories = {m: storage.get_json(f"{prefix}{m}_history.json", default=None) for m in ("gmf", "mlp", "neumf")}
    storage.put_bytes(prefix + "report.html", render_report(metrics, histories, data.manifest).encode(), "text/html")
    table = " | ".join(f"{m} HR@{k} {v[f'hr@{k}']:.4f} NDCG@{k} {v[f'ndcg@{k}']:.4f}" for m, v in models.items())
    log.info("evaluation of %s: %s", run_id, table)
    log.info("gate: %s — %s", "PUBLISH" if metrics["gate"]["publish"] else "REJECT", "; ".join(metrics["gate"]["reasons"]))
    log.info("report: %s", storage.uri(prefix + "report.html"))
    return {"run_id": run_id, "k": k, "metrics": {m: {kk: round(vv, 5) for kk, vv in v.items() if isinstance(vv, float)}
                                                   for m, v in models.items()},
            "full_catalog": {kk: round(vv, 5) for kk, vv in catalog.items()}, "gate": metrics["gate"],
            "report_uri": storage.uri(prefix + "report.html"), "metrics_uri": storage.uri(prefix + "metrics.json"),
            "seconds": round(time.perf_counter() - t0, 2)}
