"""A run's artifacts: the one module that names, reads and writes the objects under ``runs/<run_id>/``.

``train``, ``evaluate`` and ``publish`` are siblings: each opens ``RunArtifacts(storage, run_id)`` and
touches a run only through it, never through each other. What lives under a run:

| object | written by | content |
|---|---|---|
| ``users.parquet``, ``items.parquet`` | build | id maps: the only place string ids meet contiguous int32 indices |
| ``train.parquet``, ``valid.parquet``, ``test.parquet`` | build | positives; held-out items with their sampled negatives |
| ``config.json`` | build | the resolved settings of the build |
| ``manifest.json`` | build (last) | ``Manifest``: sizes, files, partitions read, and the ``digest`` binding everything else |
| ``<model>.pt``, ``<model>_checkpoint.pt`` | train | the model (refit, or best state) / resumable state, each carrying the manifest digest |
| ``<model>_selected.pt`` | train (refit) | the best validation epoch's model, trained on train positives only |
| ``<model>_history.json`` | train | per-epoch loss, validation HR/NDCG, samples/s |
| ``<model>.npz`` | evaluate | the published model as arrays (``serving``): what publish scores, without torch; ``metrics.json`` names its SHA-256 |
| ``metrics.json``, ``report.html`` | evaluate | test metrics, gate decision; the person's report |
| ``popularity.pt``, ``fallback.parquet`` | evaluate | item counts (a publishable model); every item's fallback score, best first |

Binding (DESIGN.md failure rules): a model or checkpoint whose digest differs from the current
manifest's was trained on another training set (the run id was rebuilt). A stale checkpoint is
discarded with a log line, never resumed; a stale model is refused with a message that names it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import pickle
from typing import TYPE_CHECKING

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, NoDataError, clip
from ncf_tasks.rundata import Manifest, RunData, from_frames
from ncf_tasks.storage import Storage

if TYPE_CHECKING:  # torch and polars load inside the functions: readers of a run need neither at import
    import numpy as np
    import polars as pl
    import torch

    from ncf_tasks.serving import ServingModel

log = logging.getLogger(__name__)
TRAINING_FILES = ("users", "items", "train", "valid", "test")
MODELS = ("gmf", "mlp", "neumf")  # the neural models: epochs, checkpoints, histories of epochs
EASE_MODEL = "ease"  # EASE^R (``baselines``): closed form, trained in its own task beside GMF and MLP
POPULARITY = "popularity"  # item counts: evaluate writes it (every run's floor; publishable with publish_model=best)
PUBLISHED_MODEL = "neumf"  # the model a run publishes by default (``publish_model=neumf``)
LABELS = {"gmf": "GMF", "mlp": "MLP", "neumf": "NeuMF", EASE_MODEL: "EASE^R", POPULARITY: "popularity"}


def label(model: str) -> str:
    """How pages and messages name a model."""
    return LABELS.get(model, model)


class RunArtifacts:
    """Names and I/O of one run's objects (see the module docstring for the list)."""

    def __init__(self, storage: Storage, run_id: str, manifest: Manifest | None = None):
        self.storage = storage
        self.run_id = run_id
        self.prefix = layout.run_prefix(run_id)
        self._manifest = manifest  # read on first use when not given

    # -- names -----------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        return self.prefix + name

    def uri(self, name: str) -> str:
        return self.storage.uri(self.key(name))

    MANIFEST, CONFIG, METRICS, REPORT, PUBLISHED, FALLBACK = (
        "manifest.json",
        "config.json",
        "metrics.json",
        "report.html",
        "publish.json",
        "fallback.parquet",
    )

    @staticmethod
    def table(role: str) -> str:
        return f"{role}.parquet"

    @staticmethod
    def model(kind: str, selected: bool = False) -> str:
        """``<kind>.pt`` the model evaluated and published; ``<kind>_selected.pt`` (refit runs) the model of the
        best validation epoch, trained on train positives only: what NeuMF's own selection fuses."""
        return f"{kind}_selected.pt" if selected else f"{kind}.pt"

    @staticmethod
    def export_file(kind: str) -> str:
        return f"{kind}.npz"

    @staticmethod
    def checkpoint(kind: str) -> str:
        return f"{kind}_checkpoint.pt"

    @staticmethod
    def history(kind: str) -> str:
        return f"{kind}_history.json"

    # -- training set ----------------------------------------------------------------------------
    def write_training_set(
        self,
        frames: dict[str, "pl.DataFrame"],
        report: dict,
        settings: Settings,
        *,
        end_date: str = "",
        partitions: list[dict] | None = None,
        skipped_unvalidated: list[str] | None = None,
        build_seconds: float | None = None,
        profile: dict | None = None,
        warm: dict | None = None,
    ) -> Manifest:
        """The set's files, the resolved settings, then the manifest (last: a set without one does not exist)."""
        s = self.storage
        for role in TRAINING_FILES:
            s.write_parquet(frames[role], self.key(self.table(role)))
        s.put_json(self.key(self.CONFIG), settings.to_dict())
        files = {role: self.key(self.table(role)) for role in TRAINING_FILES}
        listed = {o["key"]: o for o in s.list(self.prefix)}
        digest = hashlib.sha256(
            json.dumps([[k, listed[k]["etag"], listed[k]["size"]] for k in files.values()]).encode()
        ).hexdigest()
        manifest = Manifest(
            run_id=self.run_id,
            digest=digest,
            n_users=report["users"],
            n_items=report["items"],
            n_train=report["train_positives"],
            n_valid=report["valid_users"],
            n_test=report["test_users"],
            window_days=settings.window_days,
            eval_negatives=settings.eval_negatives,
            train_negatives=settings.train_negatives,
            seed=settings.seed,
            end_date=end_date,
            files=files,
            partitions=list(partitions or []),
            skipped_unvalidated=list(skipped_unvalidated or []),
            report=report,
            built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            build_seconds=build_seconds,
            profile=profile,
            warm=warm,
        )
        s.put_json(self.key(self.MANIFEST), manifest.to_dict())
        self._manifest = manifest
        return manifest

    def manifest(self) -> Manifest:
        if self._manifest is None:
            d = self.storage.get_json(self.key(self.MANIFEST), default=None)
            if d is None:
                raise NoDataError(f"no training set {self.uri(self.MANIFEST)}: run build for {self.run_id} first")
            self._manifest = Manifest.from_dict(d, self.uri(self.MANIFEST))
        return self._manifest

    def load_data(self, device: str | torch.device = "cpu") -> RunData:
        m = self.manifest()
        frames = {role: self.storage.read_parquet(m.files[role]) for role in ("train", "valid", "test")}
        return from_frames(m, m.n_users, m.n_items, device=device, **frames)

    def id_maps(self) -> dict[str, "pl.DataFrame"]:
        """{'users': (user_idx, user_id), 'items': (item_idx, item_id, train_count)}."""
        m = self.manifest()
        return {f: self.storage.read_parquet(m.files[f]) for f in ("users", "items")}

    # -- models and checkpoints ------------------------------------------------------------------
    def save_model(
        self,
        kind: str,
        state_dict: dict,
        settings: Settings,
        *,
        epoch: int,
        validation: dict,
        refit: dict | None = None,
        selected: bool = False,
    ) -> str:
        """The best state of a model with what is needed to rebuild and trust it; returns its URI.
        ``validation``: the selected epoch's figures (for a refit model, those of the model it repeats)."""
        m = self.manifest()
        _save_torch(
            self.storage,
            self.key(self.model(kind, selected)),
            {
                "model": kind,
                "state_dict": state_dict,
                "settings": settings.to_dict(),
                "epoch": epoch,
                "n_users": m.n_users,
                "n_items": m.n_items,
                "factors": settings.factors,
                "mlp_layers": list(settings.mlp_layers),
                "id_maps": {f: m.files[f] for f in ("users", "items")},
                "validation": validation,
                "refit": refit,
                "manifest_digest": m.digest,
                "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        )
        return self.uri(self.model(kind, selected))

    def has_model(self, kind: str, selected: bool = False) -> bool:
        return self.storage.exists(self.key(self.model(kind, selected)))

    def load_model_artifact(self, kind: str, *, current: bool = True, selected: bool = False) -> dict:
        """The saved artifact dict; ``current`` refuses one trained on another build of this run id."""
        key = self.key(self.model(kind, selected))
        if not self.storage.exists(key):
            raise NoDataError(f"{self.storage.uri(key)} is missing: train {kind} for run {self.run_id} first")
        art = _load_torch(self.storage, key)
        if current and art.get("manifest_digest") != self.manifest().digest:
            raise NoDataError(
                f"{self.storage.uri(key)} was trained on another training set than "
                f"{self.uri(self.MANIFEST)} (the run was rebuilt): train {kind} for run {self.run_id} again"
            )
        return art

    def load_model(
        self, kind: str, device: torch.device | str = "cpu", *, current: bool = True, selected: bool = False
    ) -> tuple[torch.nn.Module, dict]:
        from ncf_tasks.models import from_state

        art = self.load_model_artifact(kind, current=current, selected=selected)
        net = from_state(
            art["model"], art["state_dict"], art["n_users"], art["n_items"], art["factors"], tuple(art["mlp_layers"])
        )
        return net.to(device).eval(), art

    def save_serving(self, kind: str, net: torch.nn.Module, art: dict) -> dict:
        """Export the model ``art`` describes (as loaded by ``load_model``) for torch-free scoring; returns
        ``{"key", "sha256", "chunk_users"}``, which ``metrics.json`` records so that publish scores exactly
        this file (and plans its shards on the scorer's chunks)."""
        from ncf_tasks import serving

        data = serving.export(
            {k: v.detach().cpu() for k, v in net.state_dict().items()},
            {
                "model": kind,
                "run_id": self.run_id,
                "trained_at": art.get("trained_at"),
                "manifest_digest": art.get("manifest_digest"),
                "epoch": art.get("epoch"),
                "factors": art["factors"],
                "mlp_layers": list(art["mlp_layers"]),
                "n_users": art["n_users"],
            },
        )
        key = self.key(self.export_file(kind))
        self.storage.put_bytes(key, data)
        return {
            "key": key,
            "sha256": serving.digest(data),
            "chunk_users": serving.ServingModel(data, self.storage.uri(key)).chunk_users(),
        }

    def serving_record(self, kind: str) -> dict:
        """What ``metrics.json`` records of the exported ``kind`` (``save_serving``); NoDataError when nothing."""
        recorded = (self.metrics().get("serving") or {}).get(kind)
        if not recorded:
            raise NoDataError(
                f"{self.uri(self.export_file(kind))} is missing or not recorded in {self.uri(self.METRICS)}: "
                f"run evaluate for {self.run_id} again (it exports the model publish scores)"
            )
        return recorded

    def load_serving(self, kind: str) -> "ServingModel":
        """The model evaluate exported, checked against the SHA-256 in ``metrics.json`` and the run's manifest:
        anything else (a file rewritten since, a run evaluated before models were exported, or rebuilt since)
        is refused, naming what to re-run."""
        from ncf_tasks import serving

        key = self.key(self.export_file(kind))
        recorded = self.serving_record(kind)
        if not self.storage.exists(key):
            raise NoDataError(
                f"{self.storage.uri(key)} is missing: run evaluate for {self.run_id} again (it exports "
                "the model publish scores)"
            )
        data = self.storage.get_bytes(key)
        if serving.digest(data) != recorded["sha256"]:
            raise DataError(
                f"{self.storage.uri(key)} is not the file evaluate exported (SHA-256 differs from "
                f"{self.uri(self.METRICS)}): run evaluate for {self.run_id} again"
            )
        model = serving.ServingModel(data, self.storage.uri(key))
        m = self.manifest()
        if model.meta.get("manifest_digest") != m.digest or (model.n_users, model.n_items) != (m.n_users, m.n_items):
            raise NoDataError(
                f"{self.storage.uri(key)} was trained on another training set than {self.uri(self.MANIFEST)} "
                f"(the run was rebuilt): train and evaluate run {self.run_id} again"
            )
        return model

    def positives(self) -> tuple["np.ndarray", "np.ndarray"]:
        """Every (user_idx, item_idx) interaction of the run (train, validation and test positives) as int64
        numpy arrays: ``RunData.all_positives`` without torch, reading two columns of each file."""
        import numpy as np

        m = self.manifest()
        frames = [
            self.storage.read_parquet(m.files[role], columns=["user_idx", "item_idx"])
            for role in ("train", "valid", "test")
        ]
        return tuple(
            np.concatenate([f[c].to_numpy().astype(np.int64) for f in frames]) for c in ("user_idx", "item_idx")
        )

    def save_checkpoint(self, kind: str, state: dict) -> None:
        _save_torch(self.storage, self.key(self.checkpoint(kind)), {**state, "manifest_digest": self.manifest().digest})

    def load_checkpoint(self, kind: str) -> dict | None:
        """The resumable state of ``kind``, or None (none saved, or stale: discarded with a log line)."""
        key = self.key(self.checkpoint(kind))
        if not self.storage.exists(key):
            return None
        ck = _load_torch(self.storage, key)
        if ck.get("manifest_digest") != self.manifest().digest:
            log.warning(
                "%s: discarding stale checkpoint %s (written for another training set of run %s); "
                "training from the start",
                kind,
                self.storage.uri(key),
                self.run_id,
            )
            self.storage.delete([key])
            return None
        return ck

    # -- histories, metrics, report --------------------------------------------------------------
    def save_history(self, kind: str, history: dict) -> None:
        self.storage.put_json(self.key(self.history(kind)), history)

    def histories(self) -> dict[str, dict | None]:
        """The neural models' histories (epochs); EASE^R's record is ``ease_record``."""
        return {m: self.storage.get_json(self.key(self.history(m)), default=None) for m in MODELS}

    def ease_record(self) -> dict | None:
        """What EASE^R's task did: the λ search, or why it skipped (None: the task has not run)."""
        return self.storage.get_json(self.key(self.history(EASE_MODEL)), default=None)

    def write_metrics(self, metrics: dict) -> str:
        self.storage.put_json(self.key(self.METRICS), metrics)
        return self.uri(self.METRICS)

    def metrics(self, *, required: bool = True) -> dict | None:
        """``metrics.json``; when missing: NoDataError, or None if not ``required``."""
        d = self.storage.get_json(self.key(self.METRICS), default=None)
        if d is None and required:
            raise NoDataError(f"no metrics {self.uri(self.METRICS)}: run evaluate for {self.run_id} first")
        return d

    def write_fallback(self, scores: "np.ndarray") -> str:
        """Every item's fallback score (recency-weighted popularity over the run's window; ``evaluate``), best
        first: ``item_idx``, ``score``. Publish ships its head beside the table."""
        import numpy as np
        import polars as pl

        order = np.lexsort((np.arange(len(scores)), -scores))  # score descending, then item index
        df = pl.DataFrame({"item_idx": order.astype(np.int32), "score": scores[order].astype(np.float32)})
        self.storage.write_parquet(df, self.key(self.FALLBACK))
        return self.uri(self.FALLBACK)

    def fallback(self) -> "pl.DataFrame":
        """``write_fallback``'s list: NoDataError for a run evaluated before fallbacks existed."""
        if not self.storage.exists(self.key(self.FALLBACK)):
            raise NoDataError(f"{self.uri(self.FALLBACK)} is missing: run evaluate for {self.run_id} again")
        return self.storage.read_parquet(self.key(self.FALLBACK))

    def write_report(self, html: str) -> str:
        self.storage.put_bytes(self.key(self.REPORT), html.encode(), "text/html")
        return self.uri(self.REPORT)

    def write_publication(self, record: dict) -> None:
        """What publish did for this run (partition, rows, seconds): read by the runs dashboard."""
        self.storage.put_json(self.key(self.PUBLISHED), record)

    def publication(self) -> dict | None:
        return self.storage.get_json(self.key(self.PUBLISHED), default=None)


def id_translation(ours: "pl.DataFrame", theirs: "pl.DataFrame") -> "np.ndarray":
    """For each of our indices (an id map: index, string id), the other run's index of the same string id, or
    -1 if it never saw it: how evaluate rescores production's model and warm start carries its embeddings."""
    import polars as pl

    key = ours.columns[1]  # user_id / item_id
    idx = ours.columns[0]
    joined = ours.join(theirs.rename({theirs.columns[0]: "_their"}), on=key, how="left").sort(idx)
    return joined["_their"].fill_null(-1).cast(pl.Int64).to_numpy(writable=True)  # torch wants writable arrays


def list_runs(storage: Storage) -> list[RunArtifacts]:
    """Every run with a training set in the bucket (its manifest names its id), oldest build first."""
    runs = []
    for o in storage.list(layout.RUNS):
        if o["key"].endswith("/" + RunArtifacts.MANIFEST) and o["key"].count("/") == 2:
            m = storage.get_json(o["key"])
            runs.append(RunArtifacts(storage, m["run_id"], Manifest.from_dict(m, storage.uri(o["key"]))))
    return sorted(runs, key=lambda r: (r.manifest().built_at, r.run_id))


def _save_torch(storage: Storage, key: str, obj: dict) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    storage.put_bytes(key, buf.getvalue())


def _load_torch(storage: Storage, key: str) -> dict:
    import torch

    try:
        return torch.load(io.BytesIO(storage.get_bytes(key)), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:  # truncated or foreign bytes
        first = clip((str(exc).splitlines() or [""])[0], 200)
        raise DataError(f"{storage.uri(key)}: not a readable torch artifact ({type(exc).__name__}: {first})") from exc
