"""A forwarding HTTP proxy in front of the moto server that answers 500 for chosen keys.

Failures happen on the server side of a real HTTP exchange, so the code under test sees what it
would see from a failing S3 (boto3 retries, then raises) — nothing in the client is patched.
"""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultyS3:
    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.fail_pattern: re.Pattern | None = None
        self.failed: list[str] = []
        self.session_tokens: list[str] = []  # X-Amz-Security-Token of each request that carried one
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                if self.headers.get("X-Amz-Security-Token"):
                    proxy.session_tokens.append(self.headers["X-Amz-Security-Token"])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.fail_pattern and proxy.fail_pattern.search(self.path) and self.command in ("PUT", "POST"):
                    proxy.failed.append(f"{self.command} {self.path}")
                    msg = b"<Error><Code>InternalError</Code><Message>injected failure</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, pattern: str | None) -> None:
        self.fail_pattern = re.compile(pattern) if pattern else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
