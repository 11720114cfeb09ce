"""The host name Airflow records on task instances, for `make stack` (include/stack.sh).

Airflow calls ``[core] hostname_callable`` for a task instance's ``hostname``. In docker-compose each worker
is its own container, so host names tell them apart; the native stack runs both Celery workers on one host,
so each worker sets ``STACK_WORKER_NAME`` (not an ``NCF_`` name: those are the pipeline's settings, and
checked) and the name becomes ``gpu@host`` or ``default@host``, like their Celery names. Without the variable it is the plain host name (every other component).
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    name = os.environ.get("STACK_WORKER_NAME")
    host = socket.getfqdn()
    return f"{name}@{host}" if name else host
