"""Raw interaction logs: reading any supported file into the canonical schema, and writing daily files.

Supported raw formats, chosen by file name (any letter case): ``.csv``, ``.jsonl``/``.ndjson``/``.json``
(JSON Lines, or one JSON array of objects: row N is then its Nth object), ``.parquet``; each may end in
``.gz``. Names starting with ``.`` or ``_`` are markers
(``_SUCCESS``, ``.crc``) and are ignored; any other name is a file of the day that must be read, so an
unsupported one fails the day instead of being skipped. Line endings LF, CRLF and CR alone are read
(a quoted field may span lines, except in a CR-only file, whose CRs all become line ends); a UTF-8
byte order mark is skipped; other encodings than UTF-8 are refused.
Raw column names are mapped to the canonical ones by the ``raw_*_col`` settings. Every error names
the file, the column and — for a value that does not parse — the row (1-based data row; for CSV and
JSON Lines that is also the line after the header), quoting values bounded (``errors.quote``).
Timestamps must lie in [1970, 2200): anything else is a unit or format mistake, named with the unit.

Where each job lives: ``formats`` (file names, the canonical schema, size and gzip limits, the writer),
``read`` (``read_raw``, any format), ``csv_fast`` (the one-pass typed CSV reader and its piece-by-piece
variant), ``canonical`` (raw columns to canonical types, timestamps to UTC) and ``diagnose`` (what exactly
is wrong with a bad file). The names below are the package's interface; the rest is private to it.
"""

from ncf_tasks.rawio.canonical import TS_MAX, TS_MIN, fixed_iso_utc, normalize_ids, parse_iso_utc, to_canonical
from ncf_tasks.rawio.csv_fast import read_csv_pieces
from ncf_tasks.rawio.formats import (
    CANONICAL,
    EXTENSIONS,
    FORMATS,
    REQUIRED,
    canonical_schema,
    encode,
    file_name,
    format_of,
    is_marker,
    refuse_oversized,
)
from ncf_tasks.rawio.read import read_raw

__all__ = [
    "CANONICAL",
    "EXTENSIONS",
    "FORMATS",
    "REQUIRED",
    "TS_MAX",
    "TS_MIN",
    "canonical_schema",
    "encode",
    "file_name",
    "fixed_iso_utc",
    "format_of",
    "is_marker",
    "normalize_ids",
    "parse_iso_utc",
    "read_csv_pieces",
    "read_raw",
    "refuse_oversized",
    "to_canonical",
]
