"""The embedded S3 endpoint: moto's standalone server on 127.0.0.1, on a free port.

Used by ``make demo``/``make up`` (``python -m ncf_tasks.dev.local_s3 start|stop``) and by the pytest
session fixture. It is a real HTTP server: the pipeline reaches it through ``NCF_S3_ENDPOINT_URL``
exactly as it reaches AWS S3 or MinIO, nothing is patched. A fixed port made other projects' S3 tests
flaky, so the port is chosen free and the server is polled until it answers.

Persistence (``--data-dir``, what ``make demo`` and ``make up`` use: ``.data/s3/``): moto keeps objects
in memory, so the folder is a mirror of the buckets, one file per object at ``<dir>/<bucket>/<key>``
— a report, the dashboard or the Data Docs open from there in a browser. ``start`` restores every
bucket from its folder; a saver in the server's process group mirrors changed objects every few
seconds (an ETag index per bucket: unchanged objects are not downloaded again; files are replaced by
rename), and ``stop`` saves a last time before stopping the server. Chosen over moto's request
recorder (replays every request ever made, bodies included, at each start) and over file-backed S3
servers from PyPI (none implements the conditional writes, multipart uploads and range reads the
pipeline uses); the tests keep using plain moto, so what the demo runs is what the tests test.
``python -m ncf_tasks.dev.local_s3 reset --data-dir .data/s3`` (``make s3-reset``) empties it.
"""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# moto's server accepts any credentials; these dummy values only satisfy boto3's signer.
DUMMY_KEY = "testing"


@dataclass
class LocalS3:
    url: str
    pid: int
    proc: subprocess.Popen | None = None
    data_dir: Path | None = None  # persisted here (start_persistent)
    saver_pid: int | None = None

    def env(self, bucket: str) -> dict[str, str]:
        """Environment for a process that should use this endpoint."""
        from ncf_tasks.config import env_name

        values = {
            "s3_endpoint_url": self.url,
            "bucket": bucket,
            "s3_access_key_id": DUMMY_KEY,
            "s3_secret_access_key": DUMMY_KEY,
            "s3_region": "us-east-1",
        }
        return {env_name(k): v for k, v in values.items()}

    def stop(self) -> None:
        """Save (when persisted), then stop the saver and the server."""
        if self.data_dir is not None and _ready(self.url):
            save(self.url, self.data_dir)
        if self.saver_pid:
            stop_pid(self.saver_pid)
        stop_pid(self.pid)
        if self.proc is not None:
            self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/data.json", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def start(log_path: str | None = None, attempts: int = 5, timeout_s: float = 30.0) -> LocalS3:
    """Start the server in its own process group; retry on another port if one was taken meanwhile."""
    last_err = ""
    for _ in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_err = f"moto server exited with {proc.returncode} on port {port}"
                break
            if _ready(url):
                return LocalS3(url=url, pid=proc.pid, proc=proc)
            time.sleep(0.1)
        else:
            stop_pid(proc.pid)
            last_err = f"moto server on port {port} did not answer within {timeout_s}s"
    raise RuntimeError(f"could not start the embedded S3 endpoint: {last_err}")


def stop_pid(pid: int) -> None:
    """Stop the server's whole process group (it may have spawned reloader children)."""
    try:
        os.killpg(pid, signal.SIGINT)  # werkzeug's server stops cleanly on SIGINT, not on SIGTERM
    except ProcessLookupError:
        return
    for _ in range(30):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _client(url: str):
    import boto3

    return boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY
    )


def create_bucket(url: str, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        _client(url).create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


INDEX = ".etags.json"  # per bucket folder: key -> ETag of the saved copy
log = logging.getLogger(__name__)


def _local_path(bucket_dir: Path, key: str) -> Path | None:
    """Where an object is mirrored, or None for a key no file can hold (absolute, '..', a folder marker)."""
    parts = key.split("/")
    if not key or key.startswith("/") or key.endswith("/") or ".." in parts or key == INDEX:
        return None
    return bucket_dir.joinpath(*parts)


def restore(url: str, data_dir: Path) -> int:
    """Create every bucket that has a folder in ``data_dir`` and upload its files; returns objects."""
    n = 0
    client = _client(url)
    for bucket_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []:
        create_bucket(url, bucket_dir.name)
        etags = {}
        for f in sorted(p for p in bucket_dir.rglob("*") if p.is_file() and p.name != INDEX and ".part-" not in p.name):
            key = f.relative_to(bucket_dir).as_posix()
            ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            etags[key] = client.put_object(Bucket=bucket_dir.name, Key=key, Body=f.read_bytes(), ContentType=ctype)[
                "ETag"
            ]
            n += 1
        (bucket_dir / INDEX).write_text(json.dumps(etags))
    return n


def save(url: str, data_dir: Path) -> dict[str, int]:
    """Mirror every bucket into ``data_dir``: download new or changed objects, delete vanished ones."""
    client = _client(url)
    stats = {"objects": 0, "downloaded": 0, "deleted": 0, "skipped": 0}
    for b in client.list_buckets().get("Buckets", []):
        bucket_dir = data_dir / b["Name"]
        bucket_dir.mkdir(parents=True, exist_ok=True)
        index = bucket_dir / INDEX
        old = json.loads(index.read_text()) if index.exists() else {}
        seen: dict[str, str] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            for o in page.get("Contents", []):
                path = _local_path(bucket_dir, o["Key"])
                if path is None:
                    stats["skipped"] += 1
                    continue
                seen[o["Key"]] = o["ETag"]
                if old.get(o["Key"]) == o["ETag"] and path.is_file():
                    continue
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f"{path.name}.part-{os.getpid()}")
                    client.download_file(b["Name"], o["Key"], str(tmp))
                    os.replace(tmp, path)
                    stats["downloaded"] += 1
                except (OSError, NotADirectoryError) as exc:  # a key that is also a "folder" of other keys
                    log.warning("not mirrored: s3://%s/%s (%s)", b["Name"], o["Key"], exc)
                    seen.pop(o["Key"], None)
        for key in set(old) - set(seen):
            path = _local_path(bucket_dir, key)
            if path is not None and path.is_file():
                path.unlink()
                stats["deleted"] += 1
        for d in sorted((p for p in bucket_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(d.iterdir()):
                d.rmdir()
        tmp_index = index.with_name(INDEX + ".tmp")
        tmp_index.write_text(json.dumps(seen))
        os.replace(tmp_index, index)
        stats["objects"] += len(seen)
    return stats


def local_pages(bucket_dir: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """What a person opens after a run, as files of the mirror: dashboard, the served run's report,
    its day's Data Docs, the top-K table (those that exist)."""
    from ncf_tasks import layout

    root = bucket_dir / layout.normalized_prefix(prefix)
    out = [("runs dashboard", root / layout.dashboard())]
    pointer_file = root / layout.latest_pointer()
    if pointer_file.is_file():
        pointer = json.loads(pointer_file.read_text())
        out += [
            ("report of served run", root / layout.run_prefix(pointer["run_id"]) / "report.html"),
            ("Data Docs of its day", root / layout.validation_report(pointer["partition"]) / "index.html"),
        ]
        out += [("top-K table", root / f) for f in pointer["files"]]
    return [(label, p.resolve()) for label, p in out if p.is_file()]


def start_persistent(data_dir: str | Path, every: float = 5.0, log_path: str | None = None) -> LocalS3:
    """``start``, restore the buckets persisted in ``data_dir``, and mirror them there every ``every``
    seconds from a saver process of its own (``LocalS3.stop`` saves a last time and stops both)."""
    server = start(log_path=log_path)
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    n = restore(server.url, data_dir)
    print(f"restored {n} object(s) from {data_dir} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    saver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ncf_tasks.dev.local_s3",
            "autosave",
            "--url",
            server.url,
            "--data-dir",
            str(data_dir),
            "--every",
            str(every),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "ab") if log_path else subprocess.DEVNULL,
        start_new_session=True,
    )
    server.data_dir, server.saver_pid = data_dir, saver.pid
    return server


def _autosave(url: str, data_dir: Path, every: float) -> None:
    """Mirror every ``every`` seconds until the server stops answering (stopped with its process group)."""
    while _ready(url):
        try:
            save(url, data_dir)
        except Exception as exc:  # noqa: BLE001 - a failed round is retried at the next
            log.warning("autosave of %s failed: %s", data_dir, exc)
        time.sleep(every)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncf_tasks.dev.local_s3", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start in the background, create the bucket, write a state file")
    s.add_argument("--state", required=True, help="JSON file recording url and pid (read by 'stop')")
    s.add_argument("--bucket", default="ncf")
    s.add_argument("--log", default=None)
    s.add_argument(
        "--data-dir",
        default=None,
        help="persist the buckets in this folder (restored now, mirrored while running, saved at stop)",
    )
    s.add_argument("--autosave", type=float, default=5.0, help="seconds between mirror rounds (with --data-dir)")
    t = sub.add_parser("stop", help="save (with --data-dir at start) and stop the server recorded in the state file")
    t.add_argument("--state", required=True)
    v = sub.add_parser("save", help="mirror the running server's buckets into its data folder now")
    v.add_argument("--state", required=True)
    a = sub.add_parser("autosave", help=argparse.SUPPRESS)
    a.add_argument("--url", required=True)
    a.add_argument("--data-dir", required=True)
    a.add_argument("--every", type=float, default=5.0)
    pa = sub.add_parser("paths", help="print the local files of the persisted bucket a person opens")
    pa.add_argument("--state", required=True)
    r = sub.add_parser("reset", help="delete the persisted buckets (the endpoint must be stopped)")
    r.add_argument("--data-dir", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "autosave":
        _autosave(args.url, Path(args.data_dir), args.every)
        return 0
    if args.cmd == "reset":
        shutil.rmtree(args.data_dir, ignore_errors=True)
        print(f"removed {args.data_dir}")
        return 0

    state = Path(args.state)
    if args.cmd == "start":
        if state.exists():
            old = json.loads(state.read_text())
            if _ready(old["url"]):
                print(old["url"])
                return 0
        if args.data_dir:
            server = start_persistent(args.data_dir, args.autosave, args.log)
        else:
            server = start(log_path=args.log)
        record = {"url": server.url, "pid": server.pid, "bucket": args.bucket}
        if server.data_dir is not None:
            record.update(data_dir=str(server.data_dir), saver_pid=server.saver_pid)
        create_bucket(server.url, args.bucket)
        state.write_text(json.dumps(record))
        print(server.url)
        return 0
    if not state.exists():
        return 0
    record = json.loads(state.read_text())
    if args.cmd == "paths":
        for label, path in local_pages(
            Path(record["data_dir"]) / record["bucket"], prefix=os.environ.get("NCF_PREFIX", "")
        ):
            print(f"{label:<22} {path}")
        return 0
    if record.get("data_dir") and _ready(record["url"]):
        t = time.perf_counter()
        stats = save(record["url"], Path(record["data_dir"]))
        print(
            f"saved {stats['objects']} object(s) to {record['data_dir']} ({stats['downloaded']} downloaded) "
            f"in {time.perf_counter() - t:.1f}s",
            file=sys.stderr,
        )
    if args.cmd == "save":
        return 0
    if record.get("saver_pid"):
        stop_pid(record["saver_pid"])
    stop_pid(record["pid"])
    state.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
