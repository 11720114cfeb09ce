"""Warm start: a nightly run's models start from the model in production instead of from scratch.

Retraining every night from random weights on all history costs time that grows with the history. With
``warm_start`` on, ``build`` records in the manifest which published run to start from (the run the
``_latest.json`` pointer names: what is served) — once, so all training tasks of the run agree — unless
nothing is published yet or the data date falls on ``cold_weekday`` (the weekly cold retrain that keeps
drift from accumulating). Each model then starts from production's model of the same kind (GMF from
GMF, MLP from MLP, NeuMF from NeuMF: re-fusing would throw away NeuMF's fine-tuning):

* dense layers are copied; embedding rows are carried through the two runs' id maps (``artifacts.
  id_translation``): a user or item production knew keeps its row, a new one starts from the usual
  random initialisation, one that vanished from the window is dropped;
* it trains at most ``warm_epochs`` epochs on the train interactions of the last ``warm_window_days``
  days. The id maps, the validation/test split, the negatives' exclusions and the published table
  still cover the whole ``window_days`` history, so every user keeps their recommendations; a user
  without recent interactions keeps production's embedding;
* the carried model is epoch 0, so a warm run can never end worse on validation than where it started;
* what is carried is production's model trained on train positives only: for a refit run (``refit``), the
  selected model (``<model>_selected.pt``), not the refit one, which trained on the validation items that
  this run's validation split mostly shares.

A model whose production counterpart is missing or has another shape (``factors`` or ``mlp_layers``
changed) is trained cold, with a warning: correct, only slower.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import NoDataError
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import torch

    from ncf_tasks.artifacts import RunArtifacts
    from ncf_tasks.rundata import RunData

log = logging.getLogger(__name__)


def decide(storage: Storage, settings: Settings, end_date: str) -> dict | None:
    """The manifest's ``warm`` record for a run ending at ``end_date``: {"from_run", "since"}, or None (cold)."""
    if not settings.warm_start:
        return None
    day = dt.date.fromisoformat(end_date)
    if day.weekday() == settings.cold_weekday:
        log.info(
            "warm_start: %s is the weekly cold retrain (cold_weekday=%d): training from scratch",
            end_date,
            settings.cold_weekday,
        )
        return None
    pointer = storage.get_json(layout.latest_pointer(), default=None)
    if not pointer:
        log.info("warm_start: nothing published yet (%s): training from scratch", storage.uri(layout.latest_pointer()))
        return None
    since = (day - dt.timedelta(days=settings.warm_window_days - 1)).isoformat()
    log.info(
        "warm_start: models start from production run %s and train on interactions since %s", pointer["run_id"], since
    )
    return {"from_run": pointer["run_id"], "since": since}


def carry(
    kind: str, data: "RunData", settings: Settings, run: "RunArtifacts", record: dict
) -> tuple["torch.nn.Module", dict] | None:
    """The model ``kind`` initialised from production's (see the module docstring) and what was carried,
    or None when it cannot be (then the caller trains cold)."""
    import torch

    from ncf_tasks.artifacts import RunArtifacts, id_translation
    from ncf_tasks.models import build_model, embedding_tables

    prod = RunArtifacts(run.storage, record["from_run"])
    # production's refit model trained on its validation items, which stay this run's validation items for
    # every user without a newer interaction: carrying it would score validation on trained items (measured:
    # val HR@10 0.98 against 0.73 cold, BENCHMARKS.md). Its selected model saw train positives only.
    selected = prod.has_model(kind, selected=True)
    try:
        old, art = prod.load_model(kind, current=False, selected=selected)
    except NoDataError as exc:
        log.warning("%s: no warm start (%s): training cold", kind, exc)
        return None
    net = build_model(
        kind,
        data.n_users,
        data.n_items,
        settings.factors,
        settings.mlp_layers,
        settings.embedding_std,
        settings.dropout,
    )
    users, items = embedding_tables(net)
    side = {id(t.weight): "users" for t in users} | {id(t.weight): "items" for t in items}
    names = {name: side.get(id(p)) for name, p in net.named_parameters()}
    theirs, state = old.state_dict(), net.state_dict()
    bad = [
        n
        for n, s in names.items()
        if n not in theirs
        or (s is None and theirs[n].shape != state[n].shape)
        or (s is not None and theirs[n].shape[1:] != state[n].shape[1:])
    ]
    if bad:
        log.warning(
            "%s: production run %s's model has another shape (%s; factors or mlp_layers changed): training cold",
            kind,
            record["from_run"],
            ", ".join(bad[:3]),
        )
        return None
    ours = run.id_maps()
    maps = {
        f: torch.tensor(id_translation(ours[f], run.storage.read_parquet(art["id_maps"][f])))
        for f in ("users", "items")
    }
    with torch.no_grad():
        for name, s in names.items():
            if s is None:
                state[name].copy_(theirs[name])
            else:
                idx = maps[s]
                known = idx >= 0
                state[name][known] = theirs[name][idx[known]]
    net.load_state_dict(state)
    info = {
        "from_run": record["from_run"],
        "since": record["since"],
        "carried_users": int((maps["users"] >= 0).sum()),
        "new_users": int((maps["users"] < 0).sum()),
        "carried_items": int((maps["items"] >= 0).sum()),
        "new_items": int((maps["items"] < 0).sum()),
        "dropped_users": int(art["n_users"] - (maps["users"] >= 0).sum()),
        "dropped_items": int(art["n_items"] - (maps["items"] >= 0).sum()),
    }
    log.info(
        "%s: warm start from run %s: %d users and %d items carried, %d and %d new, %d and %d dropped",
        kind,
        info["from_run"],
        info["carried_users"],
        info["carried_items"],
        info["new_users"],
        info["new_items"],
        info["dropped_users"],
        info["dropped_items"],
    )
    return net, info


def recent(run: "RunArtifacts", data: "RunData", since: str) -> "RunData":
    """``data`` with only the train interactions at or after ``since`` (UTC) left to train on."""
    import torch

    key = run.manifest().files["train"]
    ts = run.storage.read_parquet(key, columns=["event_ts"])["event_ts"]
    start = dt.datetime.fromisoformat(since).replace(tzinfo=dt.UTC)
    mask = torch.from_numpy((ts >= start).to_numpy()).to(data.train_users.device)
    log.info("warm start: %d of %d train interactions since %s", int(mask.sum()), mask.numel(), since)
    recency = None if data.train_recency is None else data.train_recency[mask]
    return dataclasses.replace(
        data, train_users=data.train_users[mask], train_items=data.train_items[mask], train_recency=recency
    )
