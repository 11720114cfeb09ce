"""The storage layout: every key the pipeline writes is built here (DESIGN.md's table)."""

import pytest

from ncf_tasks import layout


def test_keys_of_the_design_table():
    assert (
        layout.raw_partition("2026-11-26") == f"{layout.raw_root()}dt=2026-11-26/" == "raw/interactions/dt=2026-11-26/"
    )
    assert layout.lake_file("2026-11-26") == "lake/interactions/dt=2026-11-26/part-0.parquet"
    assert layout.quarantine_status("2026-11-26") == "lake/quarantine/dt=2026-11-26/_status.json"
    assert layout.quarantine_result("2026-11-26") == "lake/quarantine/dt=2026-11-26/validation_result.json"
    assert layout.topk_table("2026-11-26", "scheduled__2026-11-27T02:00:00+00:00").startswith(
        "recs/topk/dt=2026-11-26/topk-scheduled__2026-11-27T02_00_00_00_00-"
    )
    assert layout.topk_table("2026-11-26", "r1") == "recs/topk/dt=2026-11-26/topk-r1.parquet"
    assert layout.date_of_partition(layout.topk_table("2026-11-26", "r")) == "2026-11-26"


@pytest.mark.parametrize("prefix, expected", [("", ""), ("/", ""), ("team-a", "team-a/"), ("/a/b/", "a/b/")])
def test_prefix_normalisation(prefix, expected):
    assert layout.normalized_prefix(prefix) == expected
