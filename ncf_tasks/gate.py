"""The publication gate: does a run's model deserve to replace what is served?

Publish when the published model's HR@K beats item popularity by ``gate_min_lift`` and is not worse
than the model in production by more than ``gate_tolerance`` (no production yet: only the first
condition). ``force_publish`` overrides a rejection, and the override is recorded. The decision is
made by ``evaluate`` (stored in ``metrics.json``) and enforced by ``publish`` (``GateRejected``).
"""

from __future__ import annotations

from ncf_tasks.artifacts import PUBLISHED_MODEL
from ncf_tasks.config import Settings

PUBLISHED_MODEL_NAME = {"gmf": "GMF", "mlp": "MLP", "neumf": "NeuMF"}.get(PUBLISHED_MODEL, PUBLISHED_MODEL)


def decide(settings: Settings, metrics: dict) -> dict:
    """{'passed', 'publish', 'forced', 'reasons'} for a metrics dict as ``evaluate`` writes it."""
    k = metrics["k"]
    hr = f"hr@{k}"
    new = metrics["models"][PUBLISHED_MODEL][hr]
    pop = metrics["models"]["popularity"][hr]
    name = PUBLISHED_MODEL_NAME
    reasons, ok = [], True
    if new >= pop + settings.gate_min_lift:
        reasons.append(f"{name} HR@{k} {new:.4f} >= popularity {pop:.4f} + lift {settings.gate_min_lift}")
    else:
        ok = False
        reasons.append(f"{name} HR@{k} {new:.4f} < popularity {pop:.4f} + required lift {settings.gate_min_lift}")
    prod = metrics["models"].get("production")
    if prod is None:
        reasons.append("no model in production yet")
    elif new >= prod[hr] - settings.gate_tolerance:
        reasons.append(f"{name} HR@{k} {new:.4f} >= production {prod[hr]:.4f} - tolerance {settings.gate_tolerance}")
    else:
        ok = False
        reasons.append(f"{name} HR@{k} {new:.4f} < production {prod[hr]:.4f} - tolerance {settings.gate_tolerance}")
    forced = settings.force_publish and not ok
    if forced:
        reasons.append("FORCED by operator (force_publish=true) despite the rejection above")
    return {"passed": ok, "publish": ok or settings.force_publish, "forced": forced, "reasons": reasons}
