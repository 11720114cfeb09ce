"""``python -m ncf_tasks <command>``: every stage from the shell, without Airflow.

Settings come from ``NCF_*`` environment variables; ``--set name=value`` overrides one for this call.
Logs go to stderr; the JSON result is the last line of stdout, so scripts can read it with
``tail -n1``. Exit codes (the catalogue in ``ncf_tasks/errors.py``):

0: ok
1: unexpected (a traceback), or a data-parallel rank died (DistributedTrainingFailed)
2: bad setting, argument or rules file (ConfigError)
3: no data, or a prerequisite step has not run (NoDataError)
4: bad input data (DataError)
5: validation failed, the day is quarantined (ValidationFailed)
6: storage error, retried by Airflow (StorageError)
7: the gate rejected the model; what is served stays (GateRejected)
8: another writer won a conditional write; nothing of this one is visible (ConflictError)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError, NcfError


def _generate(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.generate import SyntheticSpec, run_generate

    spec = SyntheticSpec(
        users=a.users, items=a.items, days=a.days, events_per_day=a.events_per_day, end_date=a.end_date, seed=a.seed
    )
    return run_generate(
        s, spec=spec, fmt=a.format, gz=a.gzip, files_per_day=a.files_per_day, catalog_unavailable=a.catalog_unavailable
    )


def _load_movielens(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.movielens import run_load_movielens

    return run_load_movielens(s, path=a.path, fmt=a.format)


def _ingest(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.ingest import run_ingest

    return run_ingest(s, date=a.date)


def _validate(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.validate import run_validate

    return run_validate(s, date=a.date)


def _validate_catalog(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.validate_catalog import run_validate_catalog

    return run_validate_catalog(s, date=a.date)


def _backfill(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.backfill import run_backfill

    return run_backfill(s, start=a.start, end=a.end)


def _build(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.build import run_build

    # --set names are explicit: a tuned profile does not replace them
    return run_build(s, run_id=a.run_id, end_date=a.end_date, explicit=parse_sets(a.set).keys())


def _train(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.train import run_train

    return run_train(s, run_id=a.run_id, model=a.model)


def _tune(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.tune import run_tune

    return run_tune(s, run_id=a.run_id, study=a.study or a.run_id, trials=a.trials, timeout_s=a.minutes * 60)


def _evaluate(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.evaluate import run_evaluate

    return run_evaluate(s, run_id=a.run_id)


def _publish(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.publish import run_publish

    return run_publish(s, run_id=a.run_id, date=a.date)


def _show_latest(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.reader import format_latest, show_latest

    out = show_latest(s, users=a.users, limit=a.limit)
    print(format_latest(out), file=sys.stderr)
    return out


def _inventory(s: Settings, a: argparse.Namespace) -> dict:
    from ncf_tasks.inventory import format_inventory, run_inventory

    inv = run_inventory(s)
    print(format_inventory(inv), file=sys.stderr)
    return inv


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ncf_tasks",
        description=__doc__.split("\n\n")[0],
        epilog="Settings: see README ('Configuration') or ncf_tasks/config.py.",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one setting for this call (repeatable), e.g. --set epochs=5",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    def cmd(name: str, fn: Callable, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    g = cmd("generate", _generate, "write synthetic raw logs into raw/interactions/dt=.../")
    g.add_argument("--users", type=int, default=2000)
    g.add_argument("--items", type=int, default=1000)
    g.add_argument("--days", type=int, default=7)
    g.add_argument("--events-per-day", type=int, default=10_000)
    g.add_argument("--end-date", required=True, help="last day written, YYYY-MM-DD")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    g.add_argument("--gzip", action="store_true")
    g.add_argument("--files-per-day", type=int, default=2)
    g.add_argument(
        "--catalog-unavailable",
        type=float,
        default=None,
        metavar="SHARE",
        help="also write an item catalogue snapshot for the last day under catalog_prefix, this share unavailable",
    )

    m = cmd("load-movielens", _load_movielens, "write MovieLens u.data / ratings.dat / ratings.csv as daily raw logs")
    m.add_argument("path")
    m.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="parquet")

    i = cmd("ingest", _ingest, "raw files of a date -> lake/interactions/dt=D/ (typed, de-duplicated)")
    i.add_argument("--date", required=True)
    v = cmd("validate", _validate, "validate lake/interactions/dt=D/ with Great Expectations; quarantine on failure")
    v.add_argument("--date", required=True)
    vc = cmd(
        "validate-catalog",
        _validate_catalog,
        "validate the item catalogue snapshot a table for the date uses (catalog_prefix); quarantine on failure",
    )
    vc.add_argument("--date", required=True, help="the table's date, YYYY-MM-DD")
    bf = cmd("backfill", _backfill, "ingest and validate every day of a range in one process (historical loads)")
    bf.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    bf.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
    b = cmd("build", _build, "training set of a run: id maps, leave-one-out split, eval candidates")
    b.add_argument("--run-id", required=True)
    b.add_argument("--end-date", required=True)
    t = cmd("train", _train, "train GMF, MLP or NeuMF for a run (resumes from its checkpoint)")
    t.add_argument("--run-id", required=True)
    t.add_argument("--model", choices=("gmf", "mlp", "neumf"), required=True)
    tu = cmd(
        "tune",
        _tune,
        "Optuna study on a built run's validation split; writes tuning/profile.json if it "
        "beats the current settings (build the run with --set tuned_profile=false)",
    )
    tu.add_argument("--run-id", required=True)
    tu.add_argument("--study", default=None, help="study name (default: the run id); rerun it to resume")
    tu.add_argument("--trials", type=int, default=40)
    tu.add_argument("--minutes", type=float, default=20.0, help="time budget")
    e = cmd("evaluate", _evaluate, "HR/NDCG against baselines and production, report.html, gate decision")
    e.add_argument("--run-id", required=True)
    pb = cmd("publish", _publish, "top-K table to recs/topk/dt=D/, then the _latest.json pointer")
    pb.add_argument("--run-id", required=True)
    pb.add_argument("--date", required=True, help="partition date of the table")
    sl = cmd("show-latest", _show_latest, "follow recs/topk/_latest.json and print a few users' lists")
    sl.add_argument("--users", type=int, default=3)
    sl.add_argument("--limit", type=int, default=10)
    cmd("inventory", _inventory, "list what the pipeline wrote to the bucket, with Parquet row counts")
    return p


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE")
        k, v = pair.split("=", 1)
        out[k.strip()] = v
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env(**parse_sets(args.set))
        result = args.fn(settings, args)
    except NcfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"status": "error", "error": type(exc).__name__, "message": str(exc)}))
        return exc.exit_code
    print(json.dumps(result, default=str))
    return 3 if result.get("status") == "no_data" else 0


if __name__ == "__main__":
    sys.exit(main())
