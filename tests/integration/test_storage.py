import io

import polars as pl
import pytest

from ncf_tasks.errors import StorageError
from ncf_tasks.storage import Storage


def test_objects_json_copy_delete(storage):
    storage.put_bytes("a/1.bin", b"x")
    storage.put_json("a/2.json", {"k": [1, 2]})
    storage.copy("a/1.bin", "b/1.bin")
    assert storage.list_keys("a/") == ["a/1.bin", "a/2.json"] and storage.get_bytes("b/1.bin") == b"x"
    assert storage.get_json("a/2.json") == {"k": [1, 2]} and storage.get_json("nope.json", default=None) is None
    assert storage.list_dirs("") == ["a/", "b/"]
    assert storage.delete_prefix("a/") == 2 and storage.list_keys("a/") == [] and storage.exists("b/1.bin")


def test_missing_object_error_names_uri(storage):
    with pytest.raises(StorageError, match=rf"get s3://{storage.bucket}/missing\.json"):
        storage.get_json("missing.json")
    with pytest.raises(StorageError, match=rf"s3://{storage.bucket}/missing\.parquet"):
        storage.read_parquet("missing.parquet")


def test_parquet_round_trip_through_polars_object_store(storage):
    df = pl.DataFrame({"user_id": ["u1", "u2"], "n": [1, 2]})
    storage.write_parquet(df, "t/p.parquet")
    assert storage.read_parquet("t/p.parquet").equals(df)
    assert storage.scan_parquet(["t/p.parquet", "t/p.parquet"]).select(pl.len()).collect().item() == 4


def test_parquet_parts_become_row_groups_of_one_object_or_nothing(storage):
    import pyarrow.parquet as pq

    parts = [pl.DataFrame({"user_id": [f"u{i}", f"v{i}"], "n": [i, -i]}) for i in range(3)]
    assert storage.write_parquet_parts(iter(parts), "t/parts.parquet") == (6, storage.list("t/parts.parquet")[0]["size"])
    assert storage.read_parquet("t/parts.parquet").equals(pl.concat(parts))
    assert pq.ParquetFile(io.BytesIO(storage.get_bytes("t/parts.parquet"))).num_row_groups == 3

    def failing():
        yield parts[0]
        raise RuntimeError("range 2 failed")

    with pytest.raises(RuntimeError, match="range 2 failed"):
        storage.write_parquet_parts(failing(), "t/parts.parquet")
    assert storage.read_parquet("t/parts.parquet").height == 6  # the earlier object is untouched
    assert storage.write_parquet_parts([parts[0].clear()], "t/empty.parquet")[0] == 0
    assert storage.read_parquet("t/empty.parquet").schema == parts[0].schema


def test_parquet_parts_larger_than_a_part_stream_as_multipart_and_abort_cleanly(storage):
    import numpy as np

    rng = np.random.default_rng(0)
    big = [pl.DataFrame({"x": rng.integers(0, 2**62, 1_500_000), "y": rng.random(1_500_000)}) for _ in range(2)]
    rows, size = storage.write_parquet_parts(iter(big), "t/big.parquet")
    assert rows == 3_000_000 and size > 3 * 8 * 2**20  # several 8 MB parts
    assert storage.list("t/big.parquet")[0]["size"] == size
    assert storage.read_parquet("t/big.parquet").equals(pl.concat(big))

    def failing():
        yield from big
        raise RuntimeError("range 3 failed")

    with pytest.raises(RuntimeError, match="range 3 failed"):
        storage.write_parquet_parts(failing(), "t/big.parquet")
    assert storage.read_parquet("t/big.parquet").height == 3_000_000  # the earlier object is untouched
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    assert uploads == []  # the parts already sent were aborted, not left behind


def test_atomic_put_leaves_no_temporaries(storage):
    storage.put_json_atomic("p/_latest.json", {"v": 1})
    storage.put_json_atomic("p/_latest.json", {"v": 2})
    assert storage.list_keys("p/") == ["p/_latest.json"] and storage.get_json("p/_latest.json") == {"v": 2}


def test_prefix_isolates_pipelines(settings):
    a, b = Storage(settings.replace(prefix="team-a")), Storage(settings.replace(prefix="team-b/"))
    a.put_json("x.json", 1)
    assert a.uri("x.json").endswith("/team-a/x.json") and not b.exists("x.json")
    assert Storage(settings).list_keys("team-a/") == ["team-a/x.json"]


def test_unreachable_endpoint_is_a_storage_error(settings):
    dead = Storage(settings.replace(s3_endpoint_url="http://127.0.0.1:9", s3_max_attempts=1))
    with pytest.raises(StorageError, match="list s3://"):
        dead.list("raw/")


def test_parquet_parts_to_a_failing_store_raise_its_error_without_hanging(storage):
    import numpy as np

    rng = np.random.default_rng(1)
    big = (pl.DataFrame({"x": rng.integers(0, 2**62, 1_500_000)}) for _ in range(3))
    nowhere = Storage(storage.settings.replace(bucket="no-such-bucket"))
    with pytest.raises(StorageError, match=r"put s3://no-such-bucket/t/big\.parquet"):
        nowhere.write_parquet_parts(big, "t/big.parquet")
