"""A failed batch leaves the lake for ``lake/quarantine/dt=D/`` with its result; a later pass resolves it."""

from __future__ import annotations

from ncf_tasks import layout
from ncf_tasks.storage import Storage


def quarantine(storage: Storage, day: str, result: dict) -> None:
    """Copy first, then remove from the lake: the batch is never in neither place."""
    q = layout.quarantine(day)
    storage.delete_prefix(q)  # a newer rejection of the same date replaces the older one
    storage.copy_prefix(layout.lake_partition(day), q)
    storage.put_json(layout.quarantine_result(day), result)
    storage.put_json(layout.quarantine_status(day), {"state": "quarantined", "date": day, "failed": result["failed"]})
    storage.delete_prefix(layout.lake_partition(day))


def resolve(storage: Storage, day: str) -> None:
    """A fixed re-ingest passed: mark the old rejection resolved (kept for audit, not deleted)."""
    status_key = layout.quarantine_status(day)
    status = storage.get_json(status_key, default=None)
    if status and status.get("state") == "quarantined":
        storage.put_json(
            status_key, {**status, "state": "resolved", "resolved_by": storage.uri(layout.validated_marker(day))}
        )
