"""The publication gate: does a run's model deserve to replace what is served?

The model a run publishes is NeuMF (``publish_model=neumf``), or with ``publish_model=best`` the model with the
best validation HR@K among those the run has (GMF, MLP, NeuMF, EASE^R, item popularity): ``choose``, decided by
``evaluate`` before the test split is read.

Publish when the published model's HR@K beats item popularity by ``gate_min_lift`` (not asked of popularity
itself, published only when nothing beat it on validation) and is not worse than the model in production by
more than ``gate_tolerance`` (no production yet: only the first condition). ``force_publish`` overrides a
rejection, and the override is recorded.

Stability and concentration rules, off by default (``beyond``'s measures of the published lists):
``gate_min_overlap`` (mean overlap@K with the lists in production) and ``gate_max_gini`` (Gini index of
recommendation counts over items); each blocks with a reason line like the rules above.

Every decision also states NeuMF's test margin over the strongest simple baseline (the better of popularity and
EASE^R): a nightly NeuMF that trails EASE^R by more than ``gate_tolerance`` is a notice (``notices``), shown by
the gate task's log line, the notifier, the report and the dashboard, even when the table is published. The
decision is made by ``evaluate`` (stored in ``metrics.json``) and enforced by ``publish`` (``GateRejected``).
"""

from __future__ import annotations

from ncf_tasks.artifacts import EASE_MODEL, POPULARITY, PUBLISHED_MODEL, label
from ncf_tasks.config import Settings

CHOICE_ORDER = ("neumf", "gmf", "mlp", EASE_MODEL, POPULARITY)  # on equal validation HR, the earlier wins


def choose(settings: Settings, validation_hr: dict[str, float]) -> str:
    """The model a run publishes: NeuMF, or (``publish_model=best``) the best validation HR@K of
    ``validation_hr`` (model -> HR; the test split is not an input)."""
    if settings.publish_model == "neumf":
        return PUBLISHED_MODEL
    present = [m for m in CHOICE_ORDER if validation_hr.get(m) is not None]
    return max(present, key=lambda m: (validation_hr[m], -CHOICE_ORDER.index(m)))


def decide(settings: Settings, metrics: dict) -> dict:
    """{'passed', 'publish', 'forced', 'model', 'reasons', 'notices', 'vs_baseline'} for a metrics dict as
    ``evaluate`` writes it (``published_model`` names the model judged; NeuMF when absent)."""
    k = metrics["k"]
    hr = f"hr@{k}"
    models = metrics["models"]
    published = metrics.get("published_model", PUBLISHED_MODEL)
    new = models[published][hr]
    pop = models[POPULARITY][hr]
    name = label(published)
    reasons, notices, ok = [], [], True
    if published != PUBLISHED_MODEL:
        reasons.append(
            f"publish_model=best: {name} has the best validation HR@{k} "
            f"({models[published].get('val_hr', 0) or 0:.4f}) of {', '.join(label(m) for m in models if m != 'production')}"
        )
    if published == POPULARITY:
        reasons.append("popularity is published: no trained model beat it on validation (no lift asked of it)")
    elif new >= pop + settings.gate_min_lift:
        reasons.append(f"{name} HR@{k} {new:.4f} >= popularity {pop:.4f} + lift {settings.gate_min_lift}")
    else:
        ok = False
        reasons.append(f"{name} HR@{k} {new:.4f} < popularity {pop:.4f} + required lift {settings.gate_min_lift}")
    prod = models.get("production")
    if prod is None:
        reasons.append("no model in production yet")
    elif new >= prod[hr] - settings.gate_tolerance:
        reasons.append(f"{name} HR@{k} {new:.4f} >= production {prod[hr]:.4f} - tolerance {settings.gate_tolerance}")
    else:
        ok = False
        reasons.append(f"{name} HR@{k} {new:.4f} < production {prod[hr]:.4f} - tolerance {settings.gate_tolerance}")
    measures = metrics.get("beyond") or {}
    if settings.gate_min_overlap > 0:
        o = measures.get("overlap")
        if o is None:
            reasons.append(
                f"overlap@{k} rule (gate_min_overlap={settings.gate_min_overlap}): nothing in production to compare"
            )
        elif o >= settings.gate_min_overlap:
            reasons.append(f"overlap@{k} with production {o:.3f} >= gate_min_overlap {settings.gate_min_overlap}")
        else:
            ok = False
            reasons.append(
                f"overlap@{k} with production {o:.3f} < gate_min_overlap {settings.gate_min_overlap}: the new lists "
                f"would replace most of what users see ({(measures.get('changed_all') or 0):.1%} of lists entirely)"
            )
    if settings.gate_max_gini < 1 and measures.get("gini") is not None:
        g = measures["gini"]
        if g <= settings.gate_max_gini:
            reasons.append(f"Gini of recommendations {g:.3f} <= gate_max_gini {settings.gate_max_gini}")
        else:
            ok = False
            reasons.append(
                f"Gini of recommendations {g:.3f} > gate_max_gini {settings.gate_max_gini}: the lists concentrate "
                f"on a few items (catalogue coverage {measures.get('coverage', 0):.1%})"
            )
    vs = baseline_margin(models, k)
    if vs is not None:
        reasons.append(
            f"NeuMF HR@{k} {vs['neumf']:.4f} vs the strongest simple baseline, {label(vs['baseline'])} "
            f"{vs['baseline_hr']:.4f}: margin {vs['margin']:+.4f}"
        )
        ease = models.get(EASE_MODEL)
        if ease is not None and vs["neumf"] < ease[hr] - settings.gate_tolerance:
            notices.append(
                f"NeuMF trails EASE^R: HR@{k} {vs['neumf']:.4f} < EASE^R {ease[hr]:.4f} - tolerance "
                f"{settings.gate_tolerance} (publish_model=best would serve the better model; see the report)"
            )
    forced = settings.force_publish and not ok
    if forced:
        reasons.append("FORCED by operator (force_publish=true) despite the rejection above")
    return {
        "passed": ok,
        "publish": ok or settings.force_publish,
        "forced": forced,
        "model": published,
        "reasons": reasons,
        "notices": notices,
        "vs_baseline": vs,
    }


def baseline_margin(models: dict, k: int) -> dict | None:
    """NeuMF's test HR@K against the better of popularity and EASE^R (when the run has NeuMF)."""
    hr = f"hr@{k}"
    if PUBLISHED_MODEL not in models:
        return None
    base = max((m for m in (POPULARITY, EASE_MODEL) if m in models), key=lambda m: models[m][hr])
    n = models[PUBLISHED_MODEL][hr]
    return {"neumf": n, "baseline": base, "baseline_hr": models[base][hr], "margin": round(n - models[base][hr], 5)}
