"""Development tools, not pipeline stages: the embedded S3 endpoint (``local_s3``) that ``make demo``,
``make up``, ``make stack``, the tests and the benchmarks run on 127.0.0.1, and the host name callable
of ``make stack``. No production module imports them (an import-linter contract in pyproject.toml)."""
