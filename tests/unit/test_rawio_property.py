"""Property: ingest's reader reads exactly the rows a reference parser reads (Python's ``csv`` and
``json``), for generated raw files with random but legal quoting, line endings, byte order marks,
compression, column orders and values — or refuses the file with a DataError naming it."""

import csv
import datetime as dt
import gzip
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.rawio import csv_fast as rawio_csv
from ncf_tasks.rawio import read_raw

SETTINGS = Settings.from_env(env={})
# ids: text a CSV or JSON writer must quote or escape (separators, quotes, spaces, non-ASCII), numbers-as-text
ID_CHARS = st.sampled_from(list("abcXYZ019_-., \"'é漢😀;|\t"))
IDS = st.text(ID_CHARS, min_size=1, max_size=12).filter(lambda s: s.strip() == s and s.strip())
TIMES = st.integers(0, 86_399_999_999).map(
    lambda us: dt.datetime(2026, 11, 26, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
)
ROWS = st.lists(
    st.tuples(
        IDS,
        IDS,
        TIMES,
        st.sampled_from(["view", "click", ""]),
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3))),
    ),
    min_size=1,
    max_size=25,
)
COLUMNS = st.permutations(["user_id", "item_id", "event_ts", "event_type", "value"])


def ts_text(t: dt.datetime, style: int) -> str:
    if style == 0:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if style == 1:
        return t.strftime("%Y-%m-%d %H:%M:%S")  # naive: UTC
    return t.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()  # an offset


def field(row, col, style):
    u, i, t, e, v = row
    return {
        "user_id": u,
        "item_id": i,
        "event_ts": ts_text(t, style),
        "event_type": e,
        "value": "" if v is None else repr(v),
    }[col]


def csv_text(rows, cols, quoting, newline, ts_style):
    """The file Python's csv writer makes of ``rows`` (whole seconds for the naive timestamp style)."""
    if ts_style == 1:
        rows = [(u, i, t.replace(microsecond=0), e, v) for u, i, t, e, v in rows]
    buf = io.StringIO()
    w = csv.writer(buf, quoting=quoting, lineterminator=newline)
    w.writerow(cols)
    w.writerows([[field(r, c, ts_style) for c in cols] for r in rows])
    return rows, buf.getvalue()


def check(df, rows):
    assert df.height == len(rows)
    assert df["user_id"].to_list() == [r[0] for r in rows] and df["item_id"].to_list() == [r[1] for r in rows]
    want = [r[2].replace(microsecond=r[2].microsecond) for r in rows]
    assert df["event_ts"].to_list() == want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=ROWS,
    cols=COLUMNS,
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    gz=st.booleans(),
    ts_style=st.integers(0, 2),
)
def test_csv_reads_what_the_csv_module_reads(rows, cols, quoting, newline, bom, gz, ts_style):
    if newline != "\r":  # a quoted field may span lines (not in CR-only files: see rawio's docstring)
        rows = [(u.replace(";", "\n"), i, t, e, v) for u, i, t, e, v in rows]
    rows, text = csv_text(rows, cols, quoting, newline, ts_style)
    ref = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(d["user_id"], d["item_id"]) for d in ref] == [(r[0], r[1]) for r in rows]  # the reference agrees
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    name = "s3://b/raw/interactions/dt=2026-11-26/f.csv" + (".gz" if gz else "")
    try:
        df = read_raw(gzip.compress(data) if gz else data, name, SETTINGS)
    except DataError as exc:
        raise AssertionError(f"a legal file was refused: {exc}") from exc
    check(df, rows)
    values = [None if d["value"] == "" else float(d["value"]) for d in ref]
    assert df["value"].to_list() == values


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=ROWS,
    newline=st.sampled_from(["\n", "\r\n"]),
    ascii_only=st.booleans(),
    compact=st.booleans(),
    int_ids=st.booleans(),
    bom=st.booleans(),
    shuffle=st.randoms(use_true_random=False),
)
def test_jsonl_reads_what_the_json_module_reads(rows, newline, ascii_only, compact, int_ids, bom, shuffle):
    if int_ids:
        rows = [(str(k), str(k * 7 % 5), t, e, v) for k, (_, _, t, e, v) in enumerate(rows)]
    lines = []
    for u, i, t, e, v in rows:
        obj = {
            "user_id": int(u) if int_ids else u,
            "item_id": int(i) if int_ids else i,
            "event_ts": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event_type": e,
            "value": v,
        }
        items = list(obj.items())
        shuffle.shuffle(items)  # any key order
        lines.append(json.dumps(dict(items), ensure_ascii=ascii_only, separators=(",", ":") if compact else None))
    text = newline.join(lines) + newline
    ref = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert [str(d["user_id"]) for d in ref] == [r[0] for r in rows]
    df = read_raw((b"\xef\xbb\xbf" if bom else b"") + text.encode(), "s3://b/raw/f.jsonl", SETTINGS)
    check(df, rows)


def test_text_that_is_not_utf8_is_refused_naming_the_file():
    data = "user_id,item_id,event_ts\nJosé,i1,2026-11-26T01:00:00Z\n".encode("latin-1")
    try:
        read_raw(data, "s3://b/raw/latin1.csv", SETTINGS)
    except DataError as exc:
        assert "latin1.csv" in str(exc) and "utf" in str(exc).lower()
    else:
        raise AssertionError("latin-1 bytes were accepted")


def pieces_of(data: bytes, size: int):
    return (data[i : i + size] for i in range(0, len(data), size))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=ROWS,
    cols=COLUMNS,
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    ts_style=st.integers(0, 2),
    piece=st.integers(1, 300),
    trailing=st.booleans(),
)
def test_csv_read_in_pieces_is_the_whole_file_or_declined(rows, cols, quoting, newline, bom, ts_style, piece, trailing):
    """``read_csv_pieces`` over a file cut anywhere returns exactly ``read_raw``'s frame, or None (then the
    file is read whole); never another frame, never an error of its own."""
    from ncf_tasks.rawio import read_csv_pieces

    text = csv_text(rows, cols, quoting, newline, ts_style)[1]
    text = text if trailing else text[: -len(newline)]
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    name = "s3://b/raw/interactions/dt=2026-11-26/f.csv"
    whole = read_raw(data, name, SETTINGS)
    pieces = read_csv_pieces(pieces_of(data, piece), name, SETTINGS)
    assert pieces is None or pieces.equals(whole)


def test_a_plain_csv_file_is_read_in_pieces_and_an_irregular_one_declined():
    from ncf_tasks.rawio import read_csv_pieces

    lines = [f"u{k},i{k % 7},2026-11-26T{k % 24:02d}:00:00Z,view,{k}.5" for k in range(500)]
    data = ("user_id,item_id,event_ts,event_type,value\r\n" + "\r\n".join(lines)).encode()
    whole = read_raw(data, "f.csv", SETTINGS)
    for size in (7, 100, 4096, len(data)):
        got = read_csv_pieces(pieces_of(data, size), "f.csv", SETTINGS)
        assert got is not None and got.equals(whole) and got.height == 500
    for odd in (
        data.replace(b"u3,", b'"u3",'),
        data.replace(b",view,1.5", b",view,"),
        b"\xef\xbb\xbf" + data,
        data.replace(b"\r\n", b"\r"),
        data.split(b"\r\n")[0] + b"\r\n",
        data.replace(b"T05:", b"X05:"),
    ):
        assert read_csv_pieces(pieces_of(odd, 64), "f.csv", SETTINGS) is None  # read_raw then reads or names it


def test_a_file_without_line_ends_is_declined_after_one_long_line_not_at_its_end(monkeypatch):
    """A CR-only file (or one giant field) would be carried piece after piece, copied each time; the
    reader gives up once an unfinished line passes ``PIECE_LINE_MAX`` and leaves the file to ``read_raw``."""
    from ncf_tasks import rawio

    monkeypatch.setattr(rawio_csv, "PIECE_LINE_MAX", 1000)
    body = b"user_id,item_id,event_ts\r" + b"u1,i1,2026-11-26T01:00:00Z\r" * 10_000
    seen = []

    def pieces():
        for i in range(0, len(body), 100):
            seen.append(i)
            yield body[i : i + 100]

    assert rawio.read_csv_pieces(pieces(), "cr.csv", SETTINGS) is None and len(seen) <= 11
    long_line = b"user_id,item_id,event_ts\n" + b"u1,i1,2026-11-26T01:00:00Z\n" + b"x" * 5000 + b"\n"
    assert rawio.read_csv_pieces(pieces_of(long_line, 100), "long.csv", SETTINGS) is None
