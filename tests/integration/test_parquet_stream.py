"""The streamed multipart Parquet writer of ingest, against the real endpoint."""

import io

import polars as pl
import pytest

from ncf_tasks.errors import StorageError
from ncf_tasks.parquet_stream import write_parquet_parts
from ncf_tasks.storage import Storage


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # the failed writer is closed quietly
def test_parquet_parts_become_row_groups_of_one_object_or_nothing(storage):
    import gc

    import pyarrow.parquet as pq

    parts = [pl.DataFrame({"user_id": [f"u{i}", f"v{i}"], "n": [i, -i]}) for i in range(3)]
    assert write_parquet_parts(storage, iter(parts), "t/parts.parquet") == (
        6,
        storage.list("t/parts.parquet")[0]["size"],
    )
    assert storage.read_parquet("t/parts.parquet").equals(pl.concat(parts))
    assert pq.ParquetFile(io.BytesIO(storage.get_bytes("t/parts.parquet"))).num_row_groups == 3

    def failing():
        yield parts[0]
        raise RuntimeError("range 2 failed")

    with pytest.raises(RuntimeError, match="range 2 failed"):
        write_parquet_parts(storage, failing(), "t/parts.parquet")
    gc.collect()  # an open writer's __del__ would close it into the finished pipe here
    assert storage.read_parquet("t/parts.parquet").height == 6  # the earlier object is untouched
    assert write_parquet_parts(storage, [parts[0].clear()], "t/empty.parquet")[0] == 0
    assert storage.read_parquet("t/empty.parquet").schema == parts[0].schema


def test_parquet_parts_larger_than_a_part_stream_as_multipart_and_abort_cleanly(storage):
    import numpy as np

    rng = np.random.default_rng(0)
    big = [pl.DataFrame({"x": rng.integers(0, 2**62, 1_500_000), "y": rng.random(1_500_000)}) for _ in range(2)]
    rows, size = write_parquet_parts(storage, iter(big), "t/big.parquet")
    assert rows == 3_000_000 and size > 3 * 8 * 2**20  # several 8 MB parts
    assert storage.list("t/big.parquet")[0]["size"] == size
    assert storage.read_parquet("t/big.parquet").equals(pl.concat(big))

    def failing():
        yield from big
        raise RuntimeError("range 3 failed")

    with pytest.raises(RuntimeError, match="range 3 failed"):
        write_parquet_parts(storage, failing(), "t/big.parquet")
    assert storage.read_parquet("t/big.parquet").height == 3_000_000  # the earlier object is untouched
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    assert uploads == []  # the parts already sent were aborted, not left behind


def test_parquet_parts_to_a_failing_store_raise_its_error_without_hanging(storage):
    import numpy as np

    rng = np.random.default_rng(1)
    big = (pl.DataFrame({"x": rng.integers(0, 2**62, 1_500_000)}) for _ in range(3))
    nowhere = Storage(storage.settings.replace(bucket="no-such-bucket"))
    with pytest.raises(StorageError, match=r"put s3://no-such-bucket/t/big\.parquet"):
        write_parquet_parts(nowhere, big, "t/big.parquet")
