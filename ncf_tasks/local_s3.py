"""The embedded S3 endpoint: moto's standalone server on 127.0.0.1, on a free port.

Used by ``make demo``/``make up`` (``python -m ncf_tasks.local_s3 start|stop``) and by the pytest
session fixture. It is a real HTTP server: the pipeline reaches it through ``NCF_S3_ENDPOINT_URL``
exactly as it reaches AWS S3 or MinIO, nothing is patched. A fixed port made other projects' S3 tests
flaky, so the port is chosen free and the server is polled until it answers.
"""

from __future__ import annotations

import argparse
import json
import os
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

    def env(self, bucket: str) -> dict[str, str]:
        """Environment for a process that should use this endpoint."""
        from ncf_tasks.config import env_name

        values = {"s3_endpoint_url": self.url, "bucket": bucket, "s3_access_key_id": DUMMY_KEY,
                  "s3_secret_access_key": DUMMY_KEY, "s3_region": "us-east-1"}
        return {env_name(k): v for k, v in values.items()}

    def stop(self) -> None:
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
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
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


def create_bucket(url: str, bucket: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY)
    client.create_bucket(Bucket=bucket)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ncf_tasks.local_s3", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start in the background, create the bucket, write a state file")
    s.add_argument("--state", required=True, help="JSON file recording url and pid (read by 'stop')")
    s.add_argument("--bucket", default="ncf")
    s.add_argument("--log", default=None)
    t = sub.add_parser("stop", help="stop the server recorded in the state file")
    t.add_argument("--state", required=True)
    args = p.parse_args(argv)

    state = Path(args.state)
    if args.cmd == "start":
        if state.exists():
            old = json.loads(state.read_text())
            if _ready(old["url"]):
                print(old["url"])
                return 0
        server = start(log_path=args.log)
        create_bucket(server.url, args.bucket)
        state.write_text(json.dumps({"url": server.url, "pid": server.pid, "bucket": args.bucket}))
        print(server.url)
        return 0
    if state.exists():
        stop_pid(json.loads(state.read_text())["pid"])
        state.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
