"""The tuned profile: settings an ``ncf_tune`` study chose on validation, picked up by nightly runs.

``tuning/profile.json`` is the current version (each study also keeps its own copy under
``tuning/studies/<study>/profile.json``, so earlier versions stay readable). A run uses it when the setting
``tuned_profile`` is on (default) and it exists. Precedence: defaults < ``NCF_*`` environment < profile <
explicit overrides (trigger params that differ from the deployment's value, ``--set``). ``build`` resolves it
once and records it in the run's manifest (``Manifest.profile``); every later stage applies the recorded
values, so a profile written during a run does not change that run half-way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)

# What a study searches (ncf_tasks/tune.py) and so what a profile may set; anything else is refused.
# The search space: name -> (kind, low, high | choices). Bounds stay inside the settings' own bounds.
# factors up to 256 and negatives up to 16 reach what tuned matrix factorisation used on ML-1M (Rendle et
# al. 2020: 192 factors, many negatives); learning rates and L2 on log scales.
SPACE: dict[str, tuple] = {
    "factors": ("categorical", (16, 32, 64, 128, 256)),
    "lr": ("log", 1e-4, 3e-2),
    "neumf_lr": ("log", 1e-5, 1e-2),
    "l2": ("log", 1e-6, 1e-1),
    "train_negatives": ("int", 1, 16),
    "alpha": ("float", 0.1, 0.9),
    "dropout": ("float", 0.0, 0.5),
    "neumf_dropout": ("float", 0.0, 0.6),
    "recency_boost": ("float", 0.0, 16.0),
}
TUNABLE = tuple(SPACE)


def current(storage: Storage) -> dict | None:
    return storage.get_json(layout.tuned_profile(), default=None)


def resolve(settings: Settings, storage: Storage, explicit: Iterable[str] = ()) -> tuple[Settings, dict | None]:
    """(settings with the profile applied, the record for the manifest) — or (settings, None) without one."""
    if not settings.tuned_profile:
        return settings, None
    prof = current(storage)
    if prof is None:
        return settings, None
    values = prof.get("settings") or {}
    unknown = sorted(set(values) - set(TUNABLE))
    if unknown:
        raise DataError(
            f"{storage.uri(layout.tuned_profile())}: settings {unknown} cannot be tuned; allowed: {list(TUNABLE)}"
        )
    explicit = set(explicit)
    applied = {k: v for k, v in values.items() if k not in explicit}
    settings = settings.replace(**applied)  # typed and bounds-checked like any override
    log.info(
        "tuned profile %s applied: %s%s",
        prof.get("version"),
        applied,
        f" (explicit, kept: {sorted(explicit & values.keys())})" if explicit & values.keys() else "",
    )
    return settings, {"version": prof.get("version"), "uri": storage.uri(layout.tuned_profile()), "applied": applied}
