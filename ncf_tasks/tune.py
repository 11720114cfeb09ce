"""Hyper-parameter search on the validation split (Optuna: TPE sampler, median pruner); writes the tuned profile.

A trial trains GMF, MLP and NeuMF in this process on a built training set (``build`` of the tune run), with
the pipeline's own loop (``fitting.fit``), and scores NeuMF's best validation HR@K — the number the nightly
run selects on. Test candidates are never read. Pruning: each epoch's validation HR is reported at step
``stage * 1000 + epoch`` (GMF 1..., MLP 1001..., NeuMF 2001...), so the median pruner compares a trial's
GMF epoch 3 with the other trials' GMF epoch 3; a trial whose GMF or MLP is below the median of earlier
trials at the same epoch stops there, which is what fits 40 trials into a few minutes of ML-100K.

Study state: the trials, as Optuna's ``FrozenTrial`` fields, in ``tuning/studies/<study>/trials.json``,
written after every trial. A killed task's retry re-adds them (``create_trial``) and goes on; the trial
that was running is run again. Chosen over Optuna's RDB storage in the Airflow metadata database: the
bucket is already the pipeline's one store (its backups, its permissions), and the worker needs no DB
credentials. The trial budget counts the study's trials; the time budget counts from this try's start.

Results: ``tuning/studies/<study>/trials.parquet`` (one row per trial: number, state, value, params,
epochs, seconds), ``.../profile.json`` and ``.../report.html``, then ``tuning/profile.json`` (the version
nightly runs pick up) — written only when the best trial beats the defaults' trial (trial 0 runs the
current settings) by more than the noise of a validation figure (``min_gain``, ``tune_min_gain_se``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any

from ncf_tasks import layout
from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError, NoDataError
from ncf_tasks.profile import SPACE
from ncf_tasks.rundata import setup_torch
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)

STAGES = ("gmf", "mlp", "neumf")
STEP = 1000  # reported step = stage index * STEP + epoch


def _suggest(trial, name: str) -> Any:
    kind, *args = SPACE[name]
    if kind == "categorical":
        return trial.suggest_categorical(name, list(args[0]))
    if kind == "log":
        return trial.suggest_float(name, args[0], args[1], log=True)
    if kind == "int":
        return trial.suggest_int(name, args[0], args[1])
    return trial.suggest_float(name, args[0], args[1])


def _defaults(settings: Settings) -> dict:
    """Trial 0: the current settings, clipped into the space (the baseline a profile must beat)."""
    out = {}
    for name, (kind, *args) in SPACE.items():
        v = getattr(settings, name)
        if kind == "categorical":
            v = v if v in args[0] else min(args[0], key=lambda c: abs(c - v))
        else:
            v = min(max(v, args[0]), args[1])
        out[name] = v
    return out


def _frozen_to_json(t) -> dict:
    from optuna.distributions import distribution_to_json

    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value,
        "params": t.params,
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "intermediate_values": {str(k): v for k, v in t.intermediate_values.items()},
        "user_attrs": t.user_attrs,
    }


def _json_to_frozen(d: dict):
    import optuna
    from optuna.distributions import json_to_distribution

    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[d["state"]],
        value=d["value"],
        params=d["params"],
        distributions={k: json_to_distribution(v) for k, v in d["distributions"].items()},
        intermediate_values={int(k): v for k, v in d["intermediate_values"].items()},
        user_attrs=d["user_attrs"],
    )


class Objective:
    """Trains the three models of one trial in memory (nothing written per epoch) and returns NeuMF's best
    validation HR@K; reports each epoch to the pruner."""

    def __init__(self, settings: Settings, run: RunArtifacts):
        import torch

        from ncf_tasks.sampling import PositiveSet

        self.settings, self.device = settings, setup_torch(settings)
        self.data = run.load_data(self.device)
        self.pos = PositiveSet(*self.data.all_positives(), self.data.n_users, self.data.n_items, self.device)
        self.torch = torch

    def __call__(self, trial) -> float:
        import optuna

        from ncf_tasks.fitting import fit, initial_state, make_optimizer, new_model

        params = {name: _suggest(trial, name) for name in SPACE}
        s = self.settings.replace(**params)
        s = s.replace(patience=min(s.patience, s.tune_patience))  # the trial's early stop (tune_patience)
        k, t0 = s.eval_k, time.perf_counter()
        best: dict[str, Any] = {}
        epochs = 0
        for stage, kind in enumerate(STAGES):
            self.torch.manual_seed(s.seed)
            parts = (best["gmf"], best["mlp"]) if kind == "neumf" else None
            net = new_model(kind, self.data.n_users, self.data.n_items, s, parts).to(self.device)
            opt = make_optimizer(kind, net, s)
            state = initial_state(net, self.data, k, kind)

            def report(row: dict, st: dict, stage: int = stage) -> None:
                trial.report(row[f"val_hr@{k}"], stage * STEP + row["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{STAGES[stage]} epoch {row['epoch']}: below the median")

            try:
                fit(kind, net, opt, self.data, self.pos, s, self.device, state, on_epoch=report)
            finally:
                epochs += state["epoch"]
                trial.set_user_attr("epochs", epochs)
                trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            net.load_state_dict(state["best_state"])
            best[kind] = net.eval()
            trial.set_user_attr(f"{kind}_val_hr", round(state["best_hr"], 5))
            trial.set_user_attr(f"{kind}_best_epoch", state["best_epoch"])
            if kind == "neumf":
                trial.set_user_attr("neumf_start_val_hr", round(state["init_hr"], 5))
        return float(state["best_hr"])


def min_gain(hr: float, users: int, se: float) -> float:
    """How much a trial must beat trial 0 by to replace the current settings: ``se`` binomial standard errors of
    a validation HR of ``hr`` over ``users``. Why: a study keeps the best of many trials, each scored on the same
    few validation users, so the winner's figure is inflated by about one standard error (a study on ML-100K's
    943 users, 2026-11-29, beat the defaults by 0.005 on validation, less than its 0.014 error, and its profile
    then scored below the defaults on test in 3 of 5 seeds; BENCHMARKS.md)."""
    return se * math.sqrt(max(hr * (1 - hr), 0.0) / max(users, 1))


def run_tune(settings: Settings, *, run_id: str, study: str, trials: int, timeout_s: float) -> dict:
    """Stage: run (or resume) study ``study`` on run ``run_id``'s training set; write trials, report, profile."""
    import optuna

    if trials < 1 or not math.isfinite(timeout_s) or timeout_s <= 0:
        raise ConfigError(f"trials={trials}, timeout_s={timeout_s}: need at least 1 trial and a positive time budget")
    t0 = time.perf_counter()
    storage = Storage(settings)
    run = RunArtifacts(storage, run_id)
    run.manifest()  # NoDataError naming the missing training set, before anything else
    folder = layout.tuning_study(study)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # few random start-up trials and an early pruner: at ~30 s per full ML-100K trial, 40 trials fit 20
    # minutes only if most stop within a few GMF epochs (BENCHMARKS.md). The pruner judges from trial 1 on,
    # against trial 0 (today's settings) and then the median of the trials before: with 3 start-up trials the
    # first two random ones ran in full, and at ML-1M size one of them (256 factors, 16 negatives: MLP 11 s an
    # epoch) took 12 minutes of a 30-minute budget (benchmarks/tune.py)
    sampler = optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=6, multivariate=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2)
    st = optuna.create_study(study_name=study, direction="maximize", sampler=sampler, pruner=pruner)
    saved = storage.get_json(folder + "trials.json", default=None) or []
    for d in saved:
        st.add_trial(_json_to_frozen(d))
    if saved:
        log.info("study %s: resuming with %d trial(s) from %s", study, len(saved), storage.uri(folder + "trials.json"))
    else:
        st.enqueue_trial(_defaults(settings))  # trial 0: today's settings

    def save(study_, trial) -> None:
        done = [t for t in study_.trials if t.state.is_finished()]
        storage.put_json(folder + "trials.json", [_frozen_to_json(t) for t in done])
        best = study_.best_value if any(t.state.name == "COMPLETE" for t in done) else float("nan")
        elapsed = time.perf_counter() - t0
        log.info(
            "trial %d %s: value %s, %s epochs, %.0fs | %d/%d trials, best val HR %.4f, elapsed %.0fs of %.0fs",
            trial.number,
            trial.state.name.lower(),
            "-" if trial.value is None else f"{trial.value:.4f}",
            trial.user_attrs.get("epochs"),
            trial.user_attrs.get("seconds") or 0,
            len(done),
            trials,
            best,
            elapsed,
            timeout_s,
        )

    remaining = trials - len(saved)
    if remaining > 0:
        st.optimize(Objective(settings, run), n_trials=remaining, timeout=timeout_s, callbacks=[save], catch=())
    done = [t for t in st.trials if t.state.is_finished()]
    complete = [t for t in done if t.state.name == "COMPLETE"]
    if not complete:
        raise NoDataError(f"study {study}: no trial completed within the budget ({len(done)} pruned or failed)")
    best = st.best_trial
    baseline = next((t for t in complete if t.number == 0), None)
    k = settings.eval_k
    profile = {
        "version": study,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "objective": f"neumf val_hr@{k}",
        "value": round(best.value, 5),
        "trial": best.number,
        "baseline_value": None if baseline is None else round(baseline.value, 5),
        "settings": dict(best.params),
        "run_id": run_id,
        "digest": run.manifest().digest,
        "trials": len(done),
        "complete": len(complete),
    }
    profile["valid_users"] = int(run.manifest().report.get("valid_users") or 0)
    profile["min_gain"] = round(
        min_gain(baseline.value if baseline else best.value, profile["valid_users"], settings.tune_min_gain_se), 5
    )
    _write_trials(storage, folder, done)
    storage.put_json(folder + "profile.json", profile)
    improved = baseline is None or best.value - baseline.value > profile["min_gain"]
    _write_report(storage, folder, st, profile, k, improved)
    if improved:
        storage.put_json(layout.tuned_profile(), profile)
        log.info(
            "tuned profile %s: val HR@%d %.4f (defaults %s) -> %s",
            study,
            k,
            best.value,
            profile["baseline_value"],
            storage.uri(layout.tuned_profile()),
        )
    else:
        log.warning(
            "study %s: no trial beat the current settings (val HR@%d %.4f) by more than %.4f (%s standard "
            "error(s) over %d validation users); %s left as it was",
            study,
            k,
            baseline.value,
            profile["min_gain"],
            settings.tune_min_gain_se,
            profile["valid_users"],
            storage.uri(layout.tuned_profile()),
        )
    return {
        "study": study,
        "trials": len(done),
        "complete": len(complete),
        "pruned": sum(t.state.name == "PRUNED" for t in done),
        "best_value": profile["value"],
        "baseline_value": profile["baseline_value"],
        "settings": profile["settings"],
        "published": improved,
        "profile_uri": storage.uri(folder + "profile.json"),
        "report_uri": storage.uri(folder + "report.html"),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _write_trials(storage: Storage, folder: str, done: list) -> None:
    import polars as pl

    rows = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "epochs": t.user_attrs.get("epochs"),
            "seconds": t.user_attrs.get("seconds"),
            "neumf_start_val_hr": t.user_attrs.get("neumf_start_val_hr"),
            **{f"param_{k}": float(v) for k, v in t.params.items()},
        }
        for t in done
    ]
    storage.write_parquet(pl.DataFrame(rows, infer_schema_length=None), folder + "trials.parquet")


def _write_report(storage: Storage, folder: str, st, profile: dict, k: int, published: bool) -> None:
    """The study's page: objective per trial (pruned trials at their last reported value), parameter
    importance (Optuna's fANOVA on the completed trials), and the trials table."""
    import optuna

    from ncf_tasks import plots
    from ncf_tasks.report import render

    done = [t for t in st.trials if t.state.is_finished()]
    points = [
        (
            t.number,
            t.value if t.value is not None else max(t.intermediate_values.values(), default=float("nan")),
            t.state.name.lower(),
        )
        for t in done
    ]
    try:
        importance = (
            optuna.importance.get_param_importances(st)
            if len([t for t in done if t.state.name == "COMPLETE"]) >= 2
            else {}
        )
    except (RuntimeError, ValueError) as exc:  # e.g. every completed trial has the same value
        log.warning("parameter importance not computed: %s", exc)
        importance = {}
    html = render(
        "tuning.html.j2",
        profile=profile,
        k=k,
        objective_svg=plots.trials_chart(points, f"NeuMF validation HR@{k}"),
        importance_svg=plots.bar_chart(importance, "parameter importance (fANOVA)") if importance else None,
        importance=importance,
        trials=sorted(done, key=lambda t: t.number),
        published=published,
        params=list(SPACE),
    )
    storage.put_bytes(folder + "report.html", html.encode(), content_type="text/html; charset=utf-8")
