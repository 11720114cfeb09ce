"""Issue 13's promises under hostile input, with real files (tests/data/bad_batches/, raw_edge_cases/),
the real endpoint and the CLI: nothing lost, nothing dangling, errors that name the file, row, column
and rule, values quoted bounded, exit codes that tell Airflow whether a retry can help."""

import datetime as dt
import json

import polars as pl
import pytest
from helpers import BAD, EDGE, cli, last_json

from ncf_tasks import layout
from ncf_tasks.errors import DataError, ValidationFailed
from ncf_tasks.ingest import run_ingest
from ncf_tasks.validate import run_validate

DAY = "2026-11-26"
NOW = dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC)


def put(storage, path, name=None):
    storage.put_bytes(layout.raw_partition(DAY) + (name or path.name), path.read_bytes())


def lake(storage):
    return storage.read_parquet(layout.lake_file(DAY))


# -- legal files that used to lose rows ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, rows",
    [
        ("cr_only.csv", 3),
        ("EVENTS.CSV", 1),
        ("quoted_comma_empty.csv", 2),
        ("category_ids.parquet", 3),
        ("mixed_ts_forms.csv", 3),
        ("blank_lines.csv", 2),
        ("array.json", 2),
        ("key_names_as_values.jsonl", 2),
    ],
)
def test_legal_files_are_read_whole(storage, name, rows):
    put(storage, EDGE / name)
    assert run_ingest(storage.settings, date=DAY)["rows_written"] == rows
    df = lake(storage)
    assert df.height == rows and df.schema["user_id"] == pl.String
    if name == "quoted_comma_empty.csv":
        assert sorted(df["user_id"]) == ["a,b", 'c "quoted" d'] and df["value"].null_count() == 2
    if name == "mixed_ts_forms.csv":  # epoch seconds and ISO text in one column, each read in its own form
        times = dict(zip(df["user_id"], df["event_ts"].dt.strftime("%H:%M")))
        assert times == {"u1": "08:00", "u2": "09:30", "u3": None}


def test_cr_only_file_next_to_a_good_one_loses_nothing(storage):
    put(storage, EDGE / "cr_only.csv")
    put(storage, EDGE / "quoted_comma_empty.csv", "good.csv")
    assert run_ingest(storage.settings, date=DAY)["rows_written"] == 5


# -- files that must fail ingest, naming file, row/line, column and rule -----------------------------

INGEST_ERRORS = [
    ("events.csv.bz2", r"events\.csv\.bz2: unsupported file type \(1 such file"),
    ("more.tsv", r"more\.tsv: unsupported file type .*a day is ingested whole or not at all"),
    (
        "ms_as_seconds.csv",
        r"ms_as_seconds\.csv: row 1, column 'event_ts': value '1764115200000' is not an epoch "
        r"time in unit 's' between 1970 and 2200 \(NCF_RAW_TS_UNIT; is the unit 'ms' or 'us'\?\)",
    ),
    (
        "us_as_seconds.csv",
        r"us_as_seconds\.csv: row 1, column 'event_ts': value '1764115200000000' is not an epoch time",
    ),
    ("duplicate_header.csv", r"duplicate_header\.csv: column 'user_id' appears more than once in the header"),
    ("object_id.jsonl", r"object_id\.jsonl: line 2, column 'user_id': a JSON object or array where text or a number"),
    ("bad_json_line.jsonl", r"bad_json_line\.jsonl: not a valid JSONL file, line 2: Expecting value"),
    ("latin1.csv", r"latin1\.csv: not a valid CSV file, line 3: byte 0xE9 at byte 4 of the line is not UTF-8"),
    (
        "utf16.csv",
        r"utf16\.csv: not a valid CSV file, line 1: the file is UTF-16 \(byte order mark\); raw files must "
        r"be UTF-8",
    ),
    ("nan_id.parquet", r"nan_id\.parquet: row 2, column 'user_id': value nan is not an id that is a whole number"),
    ("header_again.csv", r"header_again\.csv: row 2, column 'event_ts': value 'event_ts' is not an ISO 8601 timestamp"),
    ("array_of_arrays.json", r"array_of_arrays\.json: not a valid JSON array of objects: "),
    (
        "semicolons.csv",
        r"semicolons\.csv: required column 'user_id' .* is missing; .*the header holds ';' and no "
        r"comma: raw CSV files must be comma-separated",
    ),
    (
        "upper_header.csv",
        r"upper_header\.csv: required column 'user_id' .* is missing; .*'USER_ID' differs only in "
        r"letter case or spaces: rename that column, or set NCF_RAW_USER_COL to it",
    ),
    ("deep_nesting.jsonl", r"deep_nesting\.jsonl: not a valid JSONL file, line 2: nested deeper than \d+ levels"),
    ("duplicate_key.jsonl", r"duplicate_key\.jsonl: line 2: key 'user_id' appears more than once in one object"),
    (
        "duplicate_key_array.json",
        r"duplicate_key_array\.json: object 2: key 'item_id' appears more than once in one "
        r"object",
    ),
]


@pytest.mark.parametrize("name, match", INGEST_ERRORS, ids=[c[0] for c in INGEST_ERRORS])
def test_bad_file_fails_ingest_and_writes_nothing(storage, name, match):
    put(storage, EDGE / "EVENTS.CSV", "good.csv")  # a good file next to it: the day is refused whole
    put(storage, BAD / name)
    with pytest.raises(DataError, match=match):
        run_ingest(storage.settings, date=DAY)
    assert storage.list_keys("lake/") == []


PLAIN_CSV = sorted(p for p in [*EDGE.iterdir(), *BAD.iterdir()] if p.name.lower().endswith(".csv"))


@pytest.mark.parametrize("path", PLAIN_CSV, ids=[p.name for p in PLAIN_CSV])
def test_the_mapped_ingests_piece_reader_reads_or_refuses_as_the_whole_file_reader(storage, path, monkeypatch):
    """Group tasks read plain CSV in pieces as it downloads (pieces of 64 bytes here): every file of both
    corpora gives the same frame, or the same error, as the single task's reader."""
    from ncf_tasks import ingest_core as ingest

    monkeypatch.setattr(ingest, "CSV_PIECE_BYTES", 64)
    put(storage, path)
    key = layout.raw_partition(DAY) + path.name
    outcomes = []
    for pieces in (False, True):
        try:
            outcomes.append(ingest.read_raw_file(storage, key, storage.settings, pieces=pieces))
        except DataError as exc:
            outcomes.append(str(exc))
    whole, in_pieces = outcomes
    assert in_pieces == whole if isinstance(whole, str) else in_pieces.equals(whole)


def test_a_day_of_only_unsupported_files_is_an_error_not_a_skip(s3_env, storage):
    put(storage, BAD / "more.tsv")
    r = cli(s3_env, "ingest", "--date", DAY)
    assert r.returncode == 4 and "unsupported file type" in last_json(r)["message"]


def test_epoch_milliseconds_ingest_with_the_right_unit(storage):
    put(storage, BAD / "ms_as_seconds.csv")
    run_ingest(storage.settings.replace(raw_ts_unit="ms"), date=DAY)
    assert lake(storage)["event_ts"].dt.date().to_list() == [dt.date(2025, 11, 26)] * 2


# -- validation: NaN, injected script, huge values -----------------------------------------------


def test_nan_value_is_quarantined(storage):
    put(storage, BAD / "nan_value.csv")
    run_ingest(storage.settings, date=DAY)
    with pytest.raises(
        ValidationFailed, match=r"rule value_finite: .*\(value\) failed .*1 bad row.*'row': 2.*'value': 'nan'"
    ):
        run_validate(storage.settings, date=DAY, now=NOW)
    assert storage.get_json(layout.quarantine_status(DAY))["state"] == "quarantined"


def test_script_in_an_id_never_reaches_a_page_unescaped(storage):
    put(storage, BAD / "script_id.csv")
    run_ingest(storage.settings, date=DAY)
    with pytest.raises(ValidationFailed, match="id_length"):  # a failing rule makes GX render the value
        run_validate(storage.settings.replace(max_id_length=10), date=DAY, now=NOW)
    pages = [k for k in storage.list_keys(layout.validation_report(DAY)) if k.endswith(".html")]
    assert pages and not [k for k in pages if b"<script>alert" in storage.get_bytes(k)]
    # GX judged the value the lake holds (no look-alike characters), and the page shows it escaped
    assert b"&lt;script&gt;alert(" in b"".join(storage.get_bytes(k) for k in pages)
    assert "<script>alert('ncf')</script>" in json.dumps(storage.get_json(layout.quarantine_result(DAY))["gx_result"])


def test_a_huge_id_is_quoted_bounded_everywhere(storage):
    huge = "x" * 3_000_000
    storage.put_bytes(
        layout.raw_partition(DAY) + "huge.csv",
        f"user_id,item_id,event_ts\n{huge},i1,2026-11-26T01:00:00Z\nu2,i2,2026-11-26T02:00:00Z\n".encode(),
    )
    run_ingest(storage.settings, date=DAY)
    with pytest.raises(ValidationFailed) as err:
        run_validate(storage.settings, date=DAY, now=NOW)
    assert "rule id_length" in str(err.value) and "(3,000,000 chars)" in str(err.value) and len(str(err.value)) < 5000
    q = layout.quarantine(DAY)
    assert len(storage.get_bytes(layout.quarantine_result(DAY))) < 200_000
    pages = [
        o
        for o in storage.list(layout.validation_report(DAY)) + storage.list(q)
        if o["key"].endswith((".html", ".json"))
    ]
    assert pages and max(o["size"] for o in pages) < 1_000_000  # only the batch itself holds the value


def test_a_huge_bad_value_is_quoted_bounded_by_ingest(storage):
    storage.put_bytes(
        layout.raw_partition(DAY) + "v.csv",
        ("user_id,item_id,event_ts,value\nu1,i1,2026-11-26T01:00:00Z," + "9" * 400 + "x\n").encode(),
    )
    with pytest.raises(DataError, match=r"row 1, column 'value': value '9{80}'… \(401 chars\) is not a number") as err:
        run_ingest(storage.settings, date=DAY)
    assert len(str(err.value)) < 400


def test_a_decompression_bomb_is_refused_naming_the_file(storage):
    """bomb.csv.gz: 59 KB that expand to 21 MB (ratio ~350). Past ``raw_max_file_mb`` (1 MB here, 4096 by
    default) the decompression stops with a DataError, instead of the worker being killed out of memory."""
    put(storage, BAD / "bomb.csv.gz")
    with pytest.raises(
        DataError,
        match=r"bomb\.csv\.gz: decompresses to more than NCF_RAW_MAX_FILE_MB=1 MB "
        r"\(from 0\.1 MB\); refused before it fills the worker's memory",
    ):
        run_ingest(storage.settings.replace(raw_max_file_mb=1), date=DAY)
    assert storage.list_keys("lake/") == []
    assert run_ingest(storage.settings, date=DAY)["rows_written"] == 1  # under the default it is a legal file


def test_a_file_past_the_size_limit_is_refused_from_the_listing(storage):
    """A plain file over ``raw_max_file_mb`` is refused by its listed size, before its GET, by the single-task
    ingest and by the mapped ingest's plan alike; the lake is not touched."""
    from ncf_tasks.ingest_mapped import plan_ingest

    body = b"user_id,item_id,event_ts,event_type,value\n" + b"u1,i1,1764115200,view,\n" * 64_000  # 1.5 MB
    storage.put_bytes(layout.raw_partition(DAY) + "big.csv", body)
    small = storage.settings.replace(raw_max_file_mb=1)
    for stage in (lambda: run_ingest(small, date=DAY), lambda: plan_ingest(small, date=DAY, groups=2)):
        with pytest.raises(
            DataError,
            match=r"raw/.*big\.csv: 1\.5 MB, more than NCF_RAW_MAX_FILE_MB=1 MB; split the "
            r"day into several files",
        ):
            stage()
    assert storage.list_keys("lake/") == []
    assert run_ingest(storage.settings, date=DAY)["rows_written"] == 1


# -- ingest after a crash: no parts left behind ------------------------------------------------------


def test_ingest_aborts_multipart_uploads_left_by_an_earlier_try(storage):
    put(storage, EDGE / "EVENTS.CSV", "good.csv")
    key = storage.key(layout.lake_file(DAY))
    up = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)
    storage.client.upload_part(Bucket=storage.bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 100)
    run_ingest(storage.settings, date=DAY)
    assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []


# -- exit codes: 2 for what the operator typed, 6 only for storage (Airflow retries 6) ------------


@pytest.mark.parametrize(
    "args, code, match",
    [
        (("ingest", "--date", "2026-13-01"), 2, "date '2026-13-01'"),
        (("ingest", "--date", "yesterday"), 2, "date 'yesterday': expected YYYY-MM-DD"),
        (("build", "--run-id", "", "--end-date", DAY), 2, "run id '': must have 1-200 characters"),
        (("build", "--run-id", "r" * 201, "--end-date", DAY), 2, "must have 1-200 characters"),
        (("build", "--run-id", "..", "--end-date", DAY), 2, "'.' and '..' are not run ids"),
        (
            ("publish", "--run-id", "r1", "--date", "2099-01-01"),
            2,
            "publish date 2099-01-01 lies after",
        ),  # before any read
    ],
)
def test_operator_mistakes_exit_2_with_a_json_line(s3_env, args, code, match):
    r = cli(s3_env, *args)
    assert r.returncode == code, r.stderr[-2000:]
    assert match in last_json(r)["message"] and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "env, match",
    [
        ({"NCF_S3_ENDPOINT_URL": "127.0.0.1:9000"}, "expected http://HOST[:PORT]"),
        ({"NCF_BUCKET": "Bad_Bucket"}, "an S3 bucket name has 3-63 lowercase letters"),
        ({"NCF_VALUE_MIN": "nan"}, "value_min (NCF_VALUE_MIN) = 'nan': expected a finite number"),
        ({"NCF_MAX_DUPLICATE_RATE": "nan"}, "expected a finite number"),
        ({"NCF_VOLUME_BAND": "nan"}, "expected a finite number"),
    ],
)
def test_bad_settings_exit_2(s3_env, env, match):
    r = cli({**s3_env, **env}, "validate", "--date", DAY)
    assert r.returncode == 2 and match in last_json(r)["message"]


def test_a_missing_bucket_is_a_storage_error_not_missing_data(s3_env):
    env = {**s3_env, "NCF_BUCKET": "no-such-bucket-here"}
    for args in (("validate", "--date", DAY), ("show-latest",), ("ingest", "--date", DAY)):
        r = cli(env, *args)
        assert r.returncode == 6 and "no-such-bucket-here" in last_json(r)["message"], (args, r.stderr[-1500:])


def test_run_ids_map_one_to_one():
    keys = {layout.run_prefix(r) for r in ("a/b", "a:b", "a b", "a_b", "a+b")}
    assert len(keys) == 5 and "runs/a_b/" in keys and all("/" not in k[5:-1] for k in keys)
    assert layout.safe_run_id("manual_1") == "manual_1"


def test_quarantine_result_is_json_with_bounded_examples(storage):
    put(storage, BAD / "nan_value.csv")
    run_ingest(storage.settings, date=DAY)
    with pytest.raises(ValidationFailed):
        run_validate(storage.settings, date=DAY, now=NOW)
    result = json.loads(storage.get_bytes(layout.quarantine_result(DAY)))
    assert any("value_finite" in f for f in result["failed"])


def test_our_run_report_escapes_what_it_shows():
    from ncf_tasks.report import render_report

    evil = "<script>alert('ncf')</script>"
    metrics = {
        "run_id": evil,
        "k": 10,
        "evaluated_at": evil,
        "test_users": 1,
        "candidates": 100,
        "gate": {"passed": False, "publish": False, "forced": False, "reasons": [evil]},
        "models": {
            "neumf": {"hr@10": 0.5, "ndcg@10": 0.3, "best_epoch": 1},
            "production": {"hr@10": 0.4, "ndcg@10": 0.2, "run_id": evil},
        },
        "full_catalog": {"recall@10": 0.1, "ndcg@10": 0.1, "coverage": 0.5, "popularity_bias": 0.5},
        "data": {"note": evil},
    }
    page = render_report(metrics, {"neumf": None}, {"n_users": 1, "n_items": 1, "n_train": 1, "end_date": evil})
    assert "<script>" not in page and "&lt;script&gt;" in page
