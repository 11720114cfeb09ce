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


def test_prefix_isolates_pipelines(settings):
    a, b = Storage(settings.replace(prefix="team-a")), Storage(settings.replace(prefix="team-b/"))
    a.put_json("x.json", 1)
    assert a.uri("x.json").endswith("/team-a/x.json") and not b.exists("x.json")
    assert Storage(settings).list_keys("team-a/") == ["team-a/x.json"]


def test_unreachable_endpoint_is_a_storage_error(settings):
    dead = Storage(settings.replace(s3_endpoint_url="http://127.0.0.1:9", s3_max_attempts=1))
    with pytest.raises(StorageError, match="list s3://"):
        dead.list("raw/")


def test_one_client_per_process_and_connection(settings):
    """A backfill makes two Storage objects a day: they share the process's client for a connection
    (creating one costs ~0.15 s), and another endpoint, credential or retry setting gets its own."""
    first, again = Storage(settings), Storage(settings)
    assert again.client is first.client
    for other in (
        settings.replace(s3_max_attempts=2),
        settings.replace(s3_endpoint_url="http://127.0.0.1:9"),
        settings.replace(s3_access_key_id="another", s3_secret_access_key="key"),
    ):
        assert Storage(other).client is not first.client
    again.put_json("shared.json", 1)
    assert first.get_json("shared.json") == 1
