"""Storage credentials from an Airflow connection, resolved the Airflow way (the Amazon provider's AWS hook)."""

from __future__ import annotations

import json

from faulty_s3 import FaultyS3

from ncf_tasks.storage import Storage


def test_a_connection_with_a_session_token_reaches_the_endpoint_with_it(s3_server, bucket, monkeypatch):
    """Keys, session token, region and endpoint come from the connection ``aws_conn_id`` names; every request
    carries the session token (mapping login and password by hand, as before, dropped it)."""
    from ncf_common import run_settings

    proxy = FaultyS3(s3_server.url)  # forwards to moto and records the token each request carries
    try:
        conn = {"conn_type": "aws", "login": "AKIDTEST", "password": "secret-test",
                "extra": {"aws_session_token": "session-token-123", "endpoint_url": proxy.url,
                          "region_name": "eu-west-1"}}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_NCF_TEST_S3", json.dumps(conn))
        for k, v in {**s3_server.env(bucket), "NCF_AWS_CONN_ID": "ncf_test_s3"}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("NCF_S3_ACCESS_KEY_ID", raising=False)
        monkeypatch.delenv("NCF_S3_SECRET_ACCESS_KEY", raising=False)
        monkeypatch.delenv("NCF_S3_ENDPOINT_URL", raising=False)
        s = run_settings({"params": {}})
        assert (s.s3_access_key_id, s.s3_secret_access_key, s.s3_session_token) == (
            "AKIDTEST", "secret-test", "session-token-123")  # fmt: skip
        assert (s.s3_endpoint_url, s.s3_region) == (proxy.url, "eu-west-1")
        storage = Storage(s)
        storage.put_json("probe.json", {"ok": True})
        assert storage.get_json("probe.json") == {"ok": True}
        assert proxy.session_tokens and set(proxy.session_tokens) == {"session-token-123"}
    finally:
        proxy.close()
