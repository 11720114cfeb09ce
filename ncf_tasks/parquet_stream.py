"""A Parquet object written piece by piece and streamed into one multipart upload (ingest's writer).

Ingest sorts and de-duplicates a day one time range at a time; this writer encodes each range as a
row group on a second thread while the next range is sorted, and streams the encoded bytes into a
multipart upload on a third, so neither the day nor its bytes are ever held whole (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl


def write_parquet_parts(storage: Storage, parts: "Iterable[pl.DataFrame]", rel: str, **options: Any) -> tuple[int, int]:
    """Encode frames one after another as row groups of one Parquet object, streamed to storage.

    For outputs computed piece by piece: each part is encoded (pyarrow, on a second thread) while
    the caller computes the next one, and the encoded bytes are uploaded (multipart, a third
    thread) while later parts are still being encoded, so neither the whole result nor its bytes
    are ever held at once. The object appears only when everything succeeded: any failure aborts
    the upload and leaves an existing object untouched. ``options`` go to
    ``pyarrow.parquet.ParquetWriter`` (zstd level 1 unless given). Needs at least one part, which
    may be empty, for the schema. Returns (rows, bytes).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    options = {"compression": "zstd", "compression_level": 1, **options}
    pipe = _Pipe()
    writer, rows, pending = None, 0, None
    with ThreadPoolExecutor(max_workers=1) as uploader, ThreadPoolExecutor(max_workers=1) as encoder:
        upload = uploader.submit(storage.put_stream, rel, pipe)
        upload.add_done_callback(lambda _: pipe.close())  # a failed upload must not leave the writer waiting
        try:
            for part in parts:
                table = part.to_arrow()
                rows += table.num_rows
                if writer is None:
                    writer = pq.ParquetWriter(pipe, table.schema, **options)
                if pending is not None:
                    pending.result()
                pending = encoder.submit(writer.write_table, table)
                del table, part
            if pending is not None:
                pending.result()
            if writer is None:
                raise ValueError(f"write_parquet_parts {storage.uri(rel)}: no parts, so no schema to write")
            writer.close()
        except BaseException as exc:
            upload_failed_first = upload.done() and upload.exception() is not None
            pipe.finish(exc)  # the upload fails on it and aborts: nothing becomes visible
            upload.exception()  # wait for the abort
            if pending is not None:
                pending.exception()  # the encoder's write ends too: the pipe is closed
            if writer is not None:  # closed here, not by the garbage collector (it raised into the void)
                with contextlib.suppress(Exception):
                    writer.close()
            if upload_failed_first:
                raise upload.exception() from None  # the storage error is the cause, not the closed pipe
            raise
        pipe.finish()
        upload.result()
    return rows, pipe.written


class _UploadStopped(OSError):
    """The reading side (the upload) ended before the writer was done."""


class _Pipe(io.RawIOBase):
    """Bytes from a producer thread to ``upload_fileobj`` reading in another, a few MB in flight.

    Not seekable, so boto3 uploads it part by part as it arrives. ``finish(exc)`` makes the reader
    raise, which aborts the multipart upload; a reader that stopped makes the writer raise.
    """

    def __init__(self, chunks_in_flight: int = 16):
        import queue

        super().__init__()
        self._queue: "queue.Queue[bytes | BaseException | None]" = queue.Queue(chunks_in_flight)
        self._pending = bytearray()
        self._done = False
        self.written = 0

    # producer side (pyarrow's writer: write and tell)
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(data)
        self._put(chunk)
        self.written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.written

    def finish(self, error: BaseException | None = None) -> None:
        """End of data, or the producer's failure for the reader to raise."""
        try:
            self._put(error)
        except _UploadStopped:
            pass

    def _put(self, item: "bytes | BaseException | None") -> None:
        import queue

        while True:
            if self._done:
                raise _UploadStopped("the upload stopped before all bytes were written")
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # consumer side (boto3)
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._pending) < size):
            item = self._queue.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise OSError(f"upload source failed: {item}")
            else:
                self._pending += item
        n = len(self._pending) if size < 0 else min(size, len(self._pending))
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def close(self) -> None:  # boto3 may close it when done; the producer side must not be cut off
        self._done = True
