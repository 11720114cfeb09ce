from helpers import cli, last_json, require_ml100k


def test_help_lists_the_stage_commands():
    r = cli({}, "--help")
    assert r.returncode == 0
    for c in (
        "generate",
        "load-movielens",
        "ingest",
        "validate",
        "build",
        "train",
        "evaluate",
        "publish",
        "show-latest",
    ):
        assert c in r.stdout


def test_generate_ingest_and_exit_codes(s3_env):
    r = cli(
        s3_env,
        "generate",
        "--end-date",
        "2026-11-26",
        "--days",
        "2",
        "--users",
        "50",
        "--items",
        "40",
        "--events-per-day",
        "500",
        "--format",
        "jsonl",
        "--gzip",
    )
    assert r.returncode == 0 and last_json(r)["days"] == ["2026-11-25", "2026-11-26"]
    r = cli(s3_env, "ingest", "--date", "2026-11-26")
    out = last_json(r)
    assert r.returncode == 0 and out["rows_written"] == 500 and out["rows_read"] - 500 == out["duplicates_dropped"] > 0
    r = cli(s3_env, "ingest", "--date", "2026-11-27")
    assert r.returncode == 3 and last_json(r)["status"] == "no_data"
    r = cli(s3_env, "--set", "epochs=zero", "ingest", "--date", "2026-11-26")
    assert r.returncode == 2 and "epochs" in last_json(r)["message"]


def test_load_movielens_writes_daily_raw_files(s3_env):
    r = cli(s3_env, "load-movielens", str(require_ml100k()))
    out = last_json(r)
    assert r.returncode == 0, r.stderr
    assert (out["rows"], out["users"], out["items"], out["first_day"], out["last_day"]) == (
        100000,
        943,
        1682,
        "1997-09-20",
        "1998-04-22",
    )
    r = cli(s3_env, "ingest", "--date", "1997-12-01")
    assert last_json(r)["rows_written"] > 0
