#!/usr/bin/env bash
# `make stack` / `make stack-down`: docker-compose.yaml's production topology, natively on one machine, for
# where Docker is missing (and for CI's tests/stack/):
#   PostgreSQL metadata DB and Redis broker (Debian packages, installed when missing and we are root),
#   CeleryExecutor, api-server, scheduler, dag-processor, triggerer, a Celery worker on queue `default`,
#   a Celery worker on queue `gpu` (training, evaluate and publish: NCF_TRAIN_QUEUE=gpu), the embedded S3
#   endpoint, and the FAB auth manager (users in the metadata DB, as compose has).
# Everything lives in $STACK_DIR (default .stack/): data, logs, pid files and secrets.env (mode 600: the DB
# password, Fernet key, JWT secret, API secret key and the admin password, made once and kept).
#   include/stack.sh start|stop|status
#   include/stack.sh worker-stop gpu|default ; include/stack.sh worker-start gpu|default
#   source .stack/env.sh    # then `airflow ...` talks to the stack
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
STACK="$(mkdir -p "${STACK_DIR:-.stack}" && cd "${STACK_DIR:-.stack}" && pwd)"
PORT="${STACK_PORT:-8080}"
PGPORT="${STACK_PG_PORT:-5433}"
REDIS_PORT="${STACK_REDIS_PORT:-6390}"
# worker and triggerer log servers: one port each, since all run on this one host
LOG_PORTS=(8795 8796 8797)
# The GPU-outage policy (README, "When the GPU worker is away"): a queued task waits this long for a worker
# of its queue, then fails (no re-queue round: the wait is exactly this) and the failure notice names it.
GPU_WAIT="${GPU_WAIT_SECONDS:-21600}"
PY="${PYTHON:-python}"

log() { echo "stack: $*"; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

as_pg() {  # PostgreSQL refuses to run as root: run its tools as the postgres account then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_packages() {
  local missing=()
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ ${#missing[@]} = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "stack: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and run again" >&2
    return 1
  fi
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

port_free() {
  "$PY" -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null
}

secrets() {
  local f="$STACK/secrets.env"
  if [ ! -f "$f" ]; then
    (umask 077; "$PY" - "$f" <<'EOF'
import base64, os, secrets, sys
tok = lambda n=24: secrets.token_urlsafe(n)
with open(sys.argv[1], "w") as f:
    f.write(f"STACK_PG_PASSWORD={tok()}\n")
    f.write(f"AIRFLOW__CORE__FERNET_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}\n")
    f.write(f"AIRFLOW__API_AUTH__JWT_SECRET={tok(32)}\n")
    f.write(f"AIRFLOW__API__SECRET_KEY={tok(32)}\n")
    f.write(f"STACK_ADMIN_PASSWORD={tok(12)}\n")
EOF
    )
    log "made $f (kept across restarts; delete it with the stack's data to rotate everything)"
  fi
  set -a; . "$f"; set +a
}

write_env() {
  # one environment for every component and for an operator's shell (`source .stack/env.sh`)
  cat > "$STACK/env.sh" <<EOF
set -a
. "$STACK/secrets.env"
AIRFLOW_HOME="$STACK/airflow"
AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
AIRFLOW__CORE__HOSTNAME_CALLABLE=ncf_tasks.dev.stack_hostname.hostname
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:\${STACK_PG_PASSWORD}@127.0.0.1:$PGPORT/airflow"
AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://airflow:\${STACK_PG_PASSWORD}@127.0.0.1:$PGPORT/airflow"
AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
AIRFLOW__API__HOST=127.0.0.1
AIRFLOW__API__PORT=$PORT
AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=${LOG_PORTS[2]}
AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=$GPU_WAIT
AIRFLOW__SCHEDULER__NUM_STUCK_IN_QUEUED_RETRIES=0
AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL=${STACK_QUEUED_CHECK_SECONDS:-60}
NCF_BUCKET="${NCF_BUCKET:-ncf-stack}"
NCF_TRAIN_QUEUE=gpu
NCF_S3_ENDPOINT_URL="\$(cat "$STACK/s3.url" 2>/dev/null)"
NCF_S3_ACCESS_KEY_ID=testing
NCF_S3_SECRET_ACCESS_KEY=testing
set +a
EOF
}

start_pg() {
  local bin; bin="$(pg_bin)"
  local data="$STACK/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"; local pw="$STACK/pg.pw"
    (umask 077; echo "$STACK_PG_PASSWORD" > "$pw")
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$data" "$pw"
      runuser -u postgres -- test -x "$data" \
        || { echo "stack: the postgres account cannot reach $data (a parent folder is private); set STACK_DIR" \
                  "to a folder under a traversable path" >&2; return 1; }
    fi
    as_pg "$bin/initdb" -D "$data" -U airflow --pwfile="$pw" -A scram-sha-256 -E UTF8 >"$STACK/logs/initdb.log"
    rm -f "$pw"
  fi
  as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $data" start >/dev/null
  PGPASSWORD="$STACK_PG_PASSWORD" psql -h 127.0.0.1 -p "$PGPORT" -U airflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='airflow'" | grep -q 1 \
    || PGPASSWORD="$STACK_PG_PASSWORD" psql -h 127.0.0.1 -p "$PGPORT" -U airflow -d postgres -qc "CREATE DATABASE airflow"
  log "PostgreSQL on 127.0.0.1:$PGPORT"
}

stop_pg() {
  local bin; bin="$(pg_bin)"
  [ -n "$bin" ] && [ -f "$STACK/pg/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$STACK/pg" -m fast -w stop >/dev/null && log "stopped PostgreSQL"
  return 0
}

start_redis() {
  mkdir -p "$STACK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --dir "$STACK/redis" --pidfile "$STACK/redis/redis.pid" --logfile "$STACK/logs/redis.log"
  log "Redis on 127.0.0.1:$REDIS_PORT"
}

stop_redis() {
  if [ -f "$STACK/redis/redis.pid" ]; then
    kill "$(cat "$STACK/redis/redis.pid")" 2>/dev/null || true
    rm -f "$STACK/redis/redis.pid"; log "stopped Redis"
  fi
}

# name -> command line of each Airflow component
component_cmd() {
  case "$1" in
    api-server) echo "airflow api-server" ;;
    scheduler) echo "airflow scheduler" ;;
    dag-processor) echo "airflow dag-processor" ;;
    triggerer) echo "airflow triggerer" ;;
    # --celery-hostname and STACK_WORKER_NAME (TI hostname, ncf_tasks/dev/stack_hostname.py) tell the two workers
    # apart on one host; in compose each is its own container and host
    worker-default) echo "airflow celery worker -q default --concurrency ${STACK_DEFAULT_CONCURRENCY:-4} --celery-hostname default@%h" ;;
    worker-gpu) echo "airflow celery worker -q gpu --concurrency 3 --celery-hostname gpu@%h" ;;
  esac
}
COMPONENTS=(api-server scheduler dag-processor triggerer worker-default worker-gpu)

start_component() {
  local name="$1" cmd; cmd="$(component_cmd "$name")"
  local extra=()
  case "$name" in
    worker-default) extra=(STACK_WORKER_NAME=default AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${LOG_PORTS[0]}") ;;
    worker-gpu) extra=(STACK_WORKER_NAME=gpu AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${LOG_PORTS[1]}") ;;
  esac
  # shellcheck disable=SC2086
  (. "$STACK/env.sh"; exec env "${extra[@]}" setsid $cmd) >"$STACK/logs/$name.log" 2>&1 </dev/null &
  echo $! > "$STACK/pids/$name.pid"
}

stop_components() {  # TERM the components' process groups at once, wait for all of them (20 s at most), KILL the rest
  local c f pg alive pgs=()
  for c in "$@"; do f="$STACK/pids/$c.pid"; [ -f "$f" ] && pgs+=("$(cat "$f")"); done
  [ ${#pgs[@]} -gt 0 ] || return 0
  # a Celery worker's first TERM is a warm shutdown: it finishes running tasks (compose's DUMB_INIT_SETSID=0)
  for pg in "${pgs[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for pg in "${pgs[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pg in "${pgs[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
  for c in "$@"; do rm -f "$STACK/pids/$c.pid"; done
}

wait_worker() {  # until the worker's Celery consumer says ready
  local name="$1"
  for _ in $(seq 1 120); do
    grep -q "ready\." "$STACK/logs/$name.log" 2>/dev/null && return 0
    kill -0 "$(cat "$STACK/pids/$name.pid")" 2>/dev/null || break
    sleep 1
  done
  echo "stack: $name did not start; see $STACK/logs/$name.log" >&2
  tail -n 20 "$STACK/logs/$name.log" >&2
  return 1
}

create_admin() {  # the FAB login, once per data folder (an older folder without the mark may have it already)
  if airflow users create --username admin --password="$STACK_ADMIN_PASSWORD" --role Admin \
      --firstname Stack --lastname Admin --email admin@localhost >"$STACK/logs/users.log" 2>&1 \
      || airflow users list 2>/dev/null | grep -qw admin; then
    touch "$STACK/admin.created"
  else
    return 1
  fi
}

start() {
  mkdir -p "$STACK/logs" "$STACK/pids"
  stop >/dev/null 2>&1 || true
  for p in "$PORT" "$PGPORT" "$REDIS_PORT" "${LOG_PORTS[@]}"; do
    port_free "$p" || { echo "stack: port $p is in use (another stack, make up, or a service); not starting" >&2; return 1; }
  done
  ensure_packages
  secrets
  write_env
  start_pg
  start_redis
  "$PY" -m ncf_tasks.dev.local_s3 start --state "$STACK/s3.json" --bucket "${NCF_BUCKET:-ncf-stack}" \
    --log "$STACK/logs/s3.log" --data-dir "$STACK/s3" >/dev/null
  "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$STACK/s3.json" > "$STACK/s3.url"
  . "$STACK/env.sh"
  log "embedded S3 endpoint $NCF_S3_ENDPOINT_URL, bucket $NCF_BUCKET"
  airflow db migrate >"$STACK/logs/db-migrate.log" 2>&1 || { tail -n 20 "$STACK/logs/db-migrate.log" >&2; return 1; }
  # the login, the sample logs and the components need only the migrated DB and the endpoint: they start
  # together (each is mostly an interpreter importing Airflow or polars; one after another took 78 s on 2
  # cores), except the api-server, which waits for the login: both write FAB's roles on their first start,
  # and one of them fails on the other's rows when they overlap
  local jobs=() admin=""
  if [ ! -f "$STACK/admin.created" ]; then  # made once per stack data folder (secrets.env holds its password)
    create_admin &
    admin=$!
  fi
  if [ "${STACK_SAMPLE_DATA:-1}" = 1 ]; then
    bash include/sample_data.sh "$(date -u -d "$(date -u +%F) - 1 day" +%F)" >"$STACK/logs/sample-data.log" 2>&1 &
    jobs+=("$!:the sample logs (see $STACK/logs/sample-data.log)")
  fi
  for c in "${COMPONENTS[@]}"; do [ "$c" = api-server ] || start_component "$c"; done
  if [ -n "$admin" ] && ! wait "$admin"; then
    echo "stack: the admin login was not created; see $STACK/logs/users.log" >&2; tail -n 20 "$STACK/logs/users.log" >&2
    return 1
  fi
  start_component api-server
  echo -n "stack: waiting for the api-server, scheduler, dag-processor and triggerer "
  local ok=0
  for _ in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$PORT/api/v2/monitor/health" 2>/dev/null \
        | "$PY" -c "import json,sys; h=json.load(sys.stdin); sys.exit(0 if all(h.get(k,{}).get('status')=='healthy' for k in ('metadatabase','scheduler','triggerer','dag_processor')) else 1)" 2>/dev/null; then
      ok=1; break
    fi
    echo -n "."; sleep 1
  done
  echo
  [ "$ok" = 1 ] || { echo "stack: not healthy in 240 s; logs in $STACK/logs/" >&2; tail -n 20 "$STACK/logs/api-server.log" >&2; return 1; }
  wait_worker worker-default
  wait_worker worker-gpu
  local j
  for j in "${jobs[@]}"; do
    wait "${j%%:*}" || { echo "stack: ${j#*:} failed" >&2; tail -n 20 "$STACK/logs/sample-data.log" >&2; return 1; }
  done
  [ "${STACK_SAMPLE_DATA:-1}" = 1 ] && cat "$STACK/logs/sample-data.log"
  log "up: UI http://127.0.0.1:$PORT  login: admin / $STACK_ADMIN_PASSWORD"
  log "workers: default@$(hostname) (queue default), gpu@$(hostname) (queue gpu); logs: $STACK/logs/"
  log "CLI: source $STACK/env.sh ; stop everything: make stack-down"
}

stop() {
  stop_components "${COMPONENTS[@]}"
  if [ -f "$STACK/s3.json" ]; then "$PY" -m ncf_tasks.dev.local_s3 stop --state "$STACK/s3.json" >/dev/null 2>&1 || true; fi
  stop_redis
  stop_pg
  log "stopped"
}

status() {
  for c in "${COMPONENTS[@]}"; do
    f="$STACK/pids/$c.pid"
    if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then echo "$c: running (pid $(cat "$f"))"; else echo "$c: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  worker-stop) stop_components "worker-${2:?gpu or default}"; log "stopped worker-$2" ;;
  worker-start) start_component "worker-${2:?gpu or default}"; wait_worker "worker-$2"; log "started worker-$2" ;;
  *) echo "usage: $0 start|stop|status|worker-stop NAME|worker-start NAME" >&2; exit 2 ;;
esac
