"""Exceptions the stages raise; the CLI and the DAG map them to exit codes and task states.

Every message names the file / URI, the row or column, and the rule that was broken. Exit codes of
``python -m ncf_tasks``: 0 ok, 1 unexpected, 2 bad setting, 3 no data, 4 bad input data,
5 validation failed (quarantined), 6 storage error, 7 gate rejected the model, 8 another writer won
a conditional write (nothing of this writer is visible).
"""


class NcfError(Exception):
    """Base class: an expected failure with a message meant for a person."""

    exit_code = 1


class ConfigError(NcfError, ValueError):
    """A setting or run parameter is invalid (names the setting and the accepted values)."""

    exit_code = 2


class DataError(NcfError, ValueError):
    """Input data broke a rule: a malformed file, a missing column, an unparseable value."""

    exit_code = 4


class ValidationFailed(NcfError):
    """A curated partition failed validation; it was quarantined. Retrying cannot help."""

    exit_code = 5


class NoDataError(NcfError):
    """Nothing to process (no raw files for the date, no curated partitions in the window)."""

    exit_code = 3


class StorageError(NcfError):
    """Object storage failed (network, permissions, missing object). Retrying may help."""

    exit_code = 6


class GateRejected(NcfError):
    """The gate rejected the run's model and no operator forced publication; what is served stays."""

    exit_code = 7


class ConflictError(NcfError):
    """Another writer replaced an object between our read and our conditional write. Not retried: the
    other writer's result stands, and nothing this writer wrote is named by it."""

    exit_code = 8


QUOTE_LIMIT = 80


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Text for a message or a report, bounded: its first ``limit`` characters plus its length."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} chars)"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A value for a message, bounded: its repr cut to ``limit`` characters plus its length.

    Hostile input (a 200 MB id, a megabyte line) must not turn into gigabytes of logs, result JSON and
    reports; a prefix and the length are what a person needs to find it."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} {'chars' if isinstance(value, str) else 'bytes'})"
    return clip(repr(value), limit + 2)
