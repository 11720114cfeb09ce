"""Every exception the stages raise on purpose: the catalogue of exit codes and retry decisions.

One table, read by the CLI (exit codes), the DAGs (Airflow's retry policy retries exactly the classes
marked ``retried``) and the tests (one case per class, through the CLI). Every message names the file /
URI, the row or column, and the rule that was broken.

| exit | class | retried by Airflow | meaning |
|---|---|---|---|
| 0 | | | ok |
| 1 | ``NcfError``, ``DistributedTrainingFailed`` | no | unexpected; a rank of data-parallel training died |
| 2 | ``ConfigError`` | no | a setting, run parameter, command argument or the rules file is invalid |
| 3 | ``NoDataError`` | no | nothing to process, or a prerequisite of this step is missing |
| 4 | ``DataError`` | no | input data broke a rule (raw files, JSON objects, artifacts) |
| 5 | ``ValidationFailed`` | no | a day failed validation and was quarantined |
| 6 | ``StorageError`` | yes | object storage failed (network, permissions, missing object) |
| 7 | ``GateRejected`` | no | the gate rejected the run's model; what is served stays |
| 8 | ``ConflictError`` | no | another writer won a conditional write; nothing of this writer is visible |

Anything else that reaches the CLI is a bug: exit 1 with its traceback.
"""


class NcfError(Exception):
    """Base class: an expected failure with a message meant for a person."""

    exit_code = 1
    retried = False  # whether the DAGs' retry policy retries it (only failures a retry can cure)


class ConfigError(NcfError, ValueError):
    """A setting, run parameter or command argument is invalid, or the rules file cannot be read (names
    the setting or file and the accepted values)."""

    exit_code = 2


class NoDataError(NcfError):
    """Nothing to process (no raw files for the date, no curated partitions in the window), or what this
    step needs was never produced (a model not trained, a run not evaluated)."""

    exit_code = 3


class DataError(NcfError, ValueError):
    """Input data broke a rule: a malformed file, a missing column, an unparseable value or JSON object."""

    exit_code = 4


class ValidationFailed(NcfError):
    """A curated partition failed validation; it was quarantined. Retrying cannot help."""

    exit_code = 5


class StorageError(NcfError):
    """Object storage failed (network, permissions, missing object). Retrying may help."""

    exit_code = 6
    retried = True


class GateRejected(NcfError):
    """The gate rejected the run's model and no operator forced publication; what is served stays."""

    exit_code = 7


class ConflictError(NcfError):
    """Another writer replaced an object between our read and our conditional write. Not retried: the
    other writer's result stands, and nothing this writer wrote is named by it."""

    exit_code = 8


class DistributedTrainingFailed(NcfError):
    """A rank of a data-parallel training died without one of the errors above (a crash, a signal, a bug);
    its traceback is in the task log. A rank's own ``NcfError`` is raised again as itself instead (a
    storage error stays retryable)."""


CATALOGUE: dict[str, type[NcfError]] = {
    cls.__name__: cls
    for cls in (
        NcfError,
        ConfigError,
        NoDataError,
        DataError,
        ValidationFailed,
        StorageError,
        GateRejected,
        ConflictError,
        DistributedTrainingFailed,
    )
}
RETRIED = tuple(f"{__name__}.{name}" for name, cls in CATALOGUE.items() if cls.retried)


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
