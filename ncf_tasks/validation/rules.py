"""Hard rules checked in polars beside the GX suite: NaN and infinity pass GX's range checks, and GX's
regex expectation runs Python's ``re`` row by row (too slow for a 10M-row day)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncf_tasks.errors import quote
from ncf_tasks.validation.outcome import Outcome, jsonable

if TYPE_CHECKING:
    import polars as pl


def finite_values(df: "pl.DataFrame") -> Outcome:
    """NaN in ``value`` passes every range check (NaN compares false) and pandas cannot tell it from a
    missing value, so this hard rule runs in polars: a present value must be a finite number."""
    import polars as pl

    col = df.get_column("value", default=None)  # missing: the schema rule's to report
    bad = (
        (col.is_nan() | col.is_infinite()).fill_null(False)
        if col is not None and col.dtype.is_float()
        else pl.Series([False] * df.height)
    )
    return polars_outcome(df, bad, "value_finite", "values_are_finite_numbers", "value", "not NaN, not infinite")


# C0 and C1 controls (NUL, tab, newline, ...), zero-width characters and marks, line and paragraph
# separators, bidirectional embeddings, overrides and isolates, word joiner, byte order mark; or
# whitespace at either end. Rust regex syntax (polars).
_BAD_ID_CHARS = (
    r"[\x{00}-\x{1f}\x{7f}-\x{9f}\x{200b}-\x{200f}\x{2028}-\x{202e}\x{2060}-\x{2069}\x{feff}]"
    r"|^\s|\s$"
)


def id_characters(df: "pl.DataFrame") -> list[Outcome]:
    r"""Ids that look equal but are not (' u1' and 'u1', 'u\u200b1' and 'u1', a right-to-left override) or
    break every line-based consumer (a newline, NUL or other control character) split one user or item
    into several and pass every other rule. A hard rule in polars: GX's regex expectation runs Python's
    ``re`` row by row, too slow for a 10M-row day. A column missing or not text is the schema rule's."""
    import polars as pl

    return [
        polars_outcome(
            df,
            df.get_column(c).str.contains(_BAD_ID_CHARS).fill_null(False),
            "id_chars",
            "values_have_no_invisible_characters",
            c,
            "no control, zero-width or bidirectional characters, no whitespace at either end",
        )
        for c in ("user_id", "item_id")
        if df.schema.get(c) == pl.String
    ]


def user_share(df: "pl.DataFrame", max_share: float | None) -> list[Outcome]:
    """Soft rule ``max_user_share``: the largest share of the day's events held by one user (a bot, a load
    test, a client replaying its queue). ``None``: not judged this day (an old day: ``suite_parameters``)."""
    import polars as pl

    if max_share is None or df.height == 0 or df.schema.get("user_id") != pl.String:
        return []
    top = df.group_by("user_id").len().sort("len", descending=True).head(1)
    user, count = top.row(0)
    share = count / df.height
    return [
        Outcome(
            rule="max_user_share",
            expectation="one_user_holds_at_most_max_user_share_of_the_day",
            column="user_id",
            success=share <= max_share,
            soft=True,
            observed=f"user {quote(user, 80)} holds {count} of {df.height} events ({share:.1%})",
            expected=f"max_user_share={max_share}",
        )
    ]


def polars_outcome(
    df: "pl.DataFrame", bad: "pl.Series", rule: str, expectation: str, column: str, expected: str
) -> Outcome:
    """The Outcome of a hard rule checked in polars: ``bad`` marks the failing rows."""
    rows = bad.arg_true().head(3).to_list()
    return Outcome(
        rule=rule,
        expectation=expectation,
        column=column,
        success=not bad.any(),
        soft=False,
        unexpected_count=int(bad.sum()),
        expected=expected,
        examples=[{"row": i + 1, **{k: jsonable(v) for k, v in df.row(i, named=True).items()}} for i in rows],
    )
