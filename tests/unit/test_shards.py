"""The user ranges of a sharded publish and the names of its parts."""

from hypothesis import given
from hypothesis import strategies as st

from ncf_tasks import layout
from ncf_tasks.publish import shard_bounds


@given(st.integers(0, 100_000), st.integers(1, 1024))
def test_shards_cover_every_user_once_in_near_equal_ranges(users, shards):
    bounds = shard_bounds(users, shards)
    assert bounds[0][0] == 0 and bounds[-1][1] == users
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no overlap
    assert len(bounds) == min(shards, max(users, 1))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


@given(st.integers(0, 100_000), st.integers(1, 1024), st.integers(1, 100))
def test_aligned_shards_start_at_chunk_starts_and_planning_again_gives_the_same_ranges(users, shards, align):
    """A shard starts where the scorer's chunks start (multiples of ``align``), so a sharded table is
    bit-identical to one task's; score_shard recomputes the ranges from the plan's shard count."""
    bounds = shard_bounds(users, shards, align)
    assert bounds[0][0] == 0 and bounds[-1][1] == users
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:]))
    assert all(a % align == 0 for a, _ in bounds)
    assert len(bounds) == min(shards, max(-(-users // align), 1))
    assert shard_bounds(users, len(bounds), align) == bounds
    chunks = [-(-(b - a) // align) for a, b in bounds[:-1]]  # whole chunks per shard (the last may end short)
    assert not chunks or max(chunks) - min(chunks) <= 1


def test_part_names_carry_the_shard_count():
    assert layout.topk_table("2026-11-26", "r1") == "recs/topk/dt=2026-11-26/topk-r1.parquet"
    assert layout.topk_table("2026-11-26", "r1", 2, 4) == "recs/topk/dt=2026-11-26/topk-r1-part-00002-of-00004.parquet"
