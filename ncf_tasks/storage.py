"""All object-storage I/O: boto3 for objects, polars/pyarrow for Parquet, one client per process and connection.

Works unchanged against AWS S3, MinIO and the embedded moto endpoint: only ``s3_endpoint_url`` and
the credentials differ. Keys passed in are relative to the configured prefix; URIs (``s3://…``)
are absolute. Errors name the URI.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConflictError, DataError, StorageError

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
_MISSING = object()


@lru_cache(maxsize=8)
def _s3_client(pid: int, endpoint: str, region: str, attempts: int, key_id: str, secret: str, token: str):
    """One boto3 client per process and connection: creating one loads botocore's service model (~0.15 s),
    which a backfill paid twice a day for every day. boto3 clients are thread-safe; the process id keeps
    a forked child from sharing its parent's connection pool."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": region,
        "config": Config(
            retries={"max_attempts": attempts, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint else None,
        ),
    }
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if key_id:
        kwargs.update(aws_access_key_id=key_id, aws_secret_access_key=secret)
        if token:
            kwargs["aws_session_token"] = token
    return boto3.session.Session().client("s3", **kwargs)


class Storage:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = layout.normalized_prefix(settings.prefix)
        self._bucket_ok = False  # checked once, on the first 404 (_require_bucket)

    # -- clients ---------------------------------------------------------------------------------
    @cached_property
    def client(self):
        s = self.settings
        return _s3_client(
            os.getpid(),
            s.s3_endpoint_url,
            s.s3_region,
            s.s3_max_attempts,
            s.s3_access_key_id,
            s.s3_secret_access_key,
            s.s3_session_token,
        )

    @cached_property
    def storage_options(self) -> dict[str, str]:
        """polars/object_store options equivalent to ``client`` (same endpoint and credentials)."""
        s = self.settings
        opts = {"aws_region": s.s3_region}
        if s.s3_endpoint_url:
            opts["aws_endpoint_url"] = s.s3_endpoint_url
            opts["aws_allow_http"] = "true" if s.s3_endpoint_url.startswith("http://") else "false"
            opts["aws_virtual_hosted_style_request"] = "false"
        if s.s3_access_key_id:
            opts["aws_access_key_id"] = s.s3_access_key_id
            opts["aws_secret_access_key"] = s.s3_secret_access_key
            if s.s3_session_token:
                opts["aws_session_token"] = s.s3_session_token
        return opts

    # -- names -----------------------------------------------------------------------------------
    def key(self, rel: str) -> str:
        return self.prefix + rel

    def uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.key(rel)}"

    def rel(self, key: str) -> str:
        """Inverse of ``key``: a full key back to a key relative to the prefix."""
        return key[len(self.prefix) :] if self.prefix and key.startswith(self.prefix) else key

    # -- objects ---------------------------------------------------------------------------------
    def list(self, rel_prefix: str) -> list[dict[str, Any]]:
        """Objects below a prefix, sorted by key: [{'key': rel, 'size': int, 'etag': str, 'modified': datetime}]."""
        out = []
        with self._errors("list", rel_prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key(rel_prefix)
            ):
                for o in page.get("Contents", []):
                    out.append(
                        {
                            "key": self.rel(o["Key"]),
                            "size": o["Size"],
                            "etag": o["ETag"].strip('"'),
                            "modified": o["LastModified"],
                        }
                    )
        return sorted(out, key=lambda o: o["key"])

    def list_keys(self, rel_prefix: str) -> list[str]:
        return [o["key"] for o in self.list(rel_prefix)]

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(rel))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                self._require_bucket()  # HEAD says 404 for a missing bucket too: that is not "no data"
                return False
            raise StorageError(f"head {self.uri(rel)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"head {self.uri(rel)}: {exc}") from exc

    def _require_bucket(self) -> None:
        """StorageError unless the bucket exists (checked once per Storage)."""
        if self._bucket_ok:
            return
        from botocore.exceptions import ClientError

        try:
            with self._errors("head bucket", ""):
                self.client.head_bucket(Bucket=self.bucket)
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in (
                "404",
                "NoSuchBucket",
            ):
                raise StorageError(
                    f"bucket s3://{self.bucket} does not exist at "
                    f"{self.settings.s3_endpoint_url or 'AWS S3'} (setting bucket, NCF_BUCKET)"
                ) from None
            raise
        self._bucket_ok = True

    def get_bytes(self, rel: str) -> bytes:
        with self._errors("get", rel):
            return self.client.get_object(Bucket=self.bucket, Key=self.key(rel))["Body"].read()

    def iter_bytes(self, rel: str, piece_bytes: int) -> Iterator[bytes]:
        """An object's bytes as pieces of ``piece_bytes`` (the last shorter), the next piece downloading on a
        second thread while the caller works on this one: a large file is never held whole."""
        from concurrent.futures import ThreadPoolExecutor

        with self._errors("get", rel):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(rel))["Body"]
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                ahead = pool.submit(body.read, piece_bytes)
                while True:
                    with self._errors("get", rel):
                        piece = ahead.result()
                    if not piece:
                        return
                    ahead = pool.submit(body.read, piece_bytes)
                    yield piece
        finally:
            body.close()

    def put_bytes(self, rel: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with self._errors("put", rel):
            self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data, ContentType=content_type)

    def put_stream(self, rel: str, stream: io.IOBase, content_type: str = "application/octet-stream") -> None:
        """Upload a file-like object; large ones go multipart (still one atomic object at the end)."""
        with self._errors("put", rel):
            self.client.upload_fileobj(stream, self.bucket, self.key(rel), ExtraArgs={"ContentType": content_type})

    def get_json(self, rel: str, default: Any = _MISSING) -> Any:
        """A JSON object; when missing: ``default`` if given (one GET, no HEAD first), else StorageError."""
        if default is _MISSING:
            return self._json(rel, self.get_bytes(rel))
        obj, etag = self.get_json_versioned(rel)
        return default if etag is None else obj

    def _json(self, rel: str, data: bytes) -> Any:
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.uri(rel)} is not valid JSON: {exc}") from exc

    def put_json(self, rel: str, obj: Any) -> None:
        self.put_bytes(rel, _json_bytes(obj), "application/json")

    def get_json_versioned(self, rel: str) -> tuple[Any, str | None]:
        """(content, ETag) of a JSON object, or (None, None) when it does not exist: the read half of
        a compare-and-swap with ``put_json_if``."""
        from botocore.exceptions import ClientError

        try:
            with self._errors("get", rel):
                resp = self.client.get_object(Bucket=self.bucket, Key=self.key(rel))
                data = resp["Body"].read()
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None, None
            raise
        return self._json(rel, data), resp["ETag"]

    def put_json_if(self, rel: str, obj: Any, etag: str | None) -> str:
        """Replace ``rel`` only if it is still the version ``etag`` (None: only if it does not exist);
        returns the new ETag. S3 conditional writes (``If-Match`` / ``If-None-Match: *``; AWS S3, MinIO
        and the embedded endpoint honour both) make the check and the write one atomic step. A writer
        that lost gets ``ConflictError`` and has changed nothing."""
        from botocore.exceptions import ClientError

        cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            with self._errors("put", rel):
                resp = self.client.put_object(
                    Bucket=self.bucket, Key=self.key(rel), Body=_json_bytes(obj), ContentType="application/json", **cond
                )
        except StorageError as exc:
            cause = exc.__cause__
            code = cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise ConflictError(
                    f"{self.uri(rel)} was changed by another writer since it was read "
                    f"({'expected version ' + etag if etag else 'expected no object'}); "
                    "nothing was written"
                ) from None
            raise
        return resp["ETag"]

    def copy(self, src_rel: str, dst_rel: str) -> None:
        with self._errors("copy", src_rel):
            self.client.copy({"Bucket": self.bucket, "Key": self.key(src_rel)}, self.bucket, self.key(dst_rel))

    def delete(self, rels: Iterable[str]) -> int:
        """Delete keys in batches of 1000; returns how many were asked to be deleted."""
        rels = list(rels)
        for i in range(0, len(rels), 1000):
            batch = [{"Key": self.key(r)} for r in rels[i : i + 1000]]
            with self._errors("delete", rels[i]):
                resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                e = resp["Errors"][0]
                raise StorageError(f"delete {self.uri(self.rel(e['Key']))}: {e.get('Code')} {e.get('Message')}")
        return len(rels)

    def abort_uploads(self, rel: str) -> int:
        """Abort unfinished multipart uploads of ``rel`` (left by a writer whose abort never reached the
        store, e.g. during an outage); returns how many. Their parts are invisible but billed."""
        n = 0
        with self._errors("abort uploads", rel):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.key(rel)
            ):
                for up in page.get("Uploads", []):
                    if up["Key"] == self.key(rel):
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        n += 1
        if n:
            log.warning("aborted %d unfinished multipart upload(s) of %s", n, self.uri(rel))
        return n

    def delete_prefix(self, rel_prefix: str) -> int:
        return self.delete(self.list_keys(rel_prefix))

    def copy_prefix(self, src_prefix: str, dst_prefix: str) -> int:
        keys = self.list_keys(src_prefix)
        for k in keys:
            self.copy(k, dst_prefix + k[len(src_prefix) :])
        return len(keys)

    # -- Parquet ---------------------------------------------------------------------------------
    def scan_parquet(self, rels: str | list[str]) -> "pl.LazyFrame":
        """Lazy scan straight from storage (range requests, no local copy)."""
        import polars as pl

        uris = [self.uri(r) for r in ([rels] if isinstance(rels, str) else rels)]
        return pl.scan_parquet(uris, storage_options=self.storage_options)

    def read_parquet(self, rels: str | list[str], columns: list[str] | None = None) -> "pl.DataFrame":
        lf = self.scan_parquet(rels)
        if columns is not None:
            lf = lf.select(columns)
        with self._errors("read parquet", rels if isinstance(rels, str) else rels[0]):
            return lf.collect()

    def fetch_parquet(self, rels: list[str]) -> "pl.LazyFrame":
        """Objects GET whole (in parallel), then scanned in memory: for small and mid-sized tables read in full
        (a published top-K table) this beats ``scan_parquet``'s many range requests (a 60 MB table: 0.3 s
        against 13 s on the embedded endpoint, benchmarks/recommend.py). Big lake files keep ``scan_parquet``."""
        import polars as pl

        if not rels:
            raise ValueError("fetch_parquet: no objects")
        with ThreadPoolExecutor(min(8, len(rels))) as pool:
            blobs = list(pool.map(self.get_bytes, rels))
        return pl.concat([pl.scan_parquet(io.BytesIO(b)) for b in blobs])

    def write_parquet(self, df: "pl.DataFrame", rel: str, compression: str = "zstd") -> int:
        """Encode in memory and upload as one object (multipart when large); returns bytes written."""
        buf = io.BytesIO()
        df.write_parquet(buf, compression=compression, statistics=True)
        size = buf.tell()
        buf.seek(0)
        self.put_stream(rel, buf)
        return size

    # -- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def _errors(self, what: str, rel: str) -> Iterator[None]:
        """Turns botocore / object_store failures into StorageError naming the URI and the operation."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            is_polars_io = type(exc).__module__.startswith("polars") and "ComputeError" not in type(exc).__name__
            if isinstance(exc, (BotoCoreError, ClientError, OSError)) or is_polars_io:
                raise StorageError(f"{what} {self.uri(rel)}: {exc}") from exc
            raise


def _json_bytes(obj: Any) -> bytes:
    """Stable JSON for objects the pipeline writes (sorted keys, so reruns write identical bytes)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
