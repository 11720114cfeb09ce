#!/usr/bin/env bash
# `make up` / `make down`: Airflow standalone (SQLite, LocalExecutor, UI on http://127.0.0.1:8080) and
# the embedded S3 endpoint, with sample logs loaded. Everything started is recorded in .up/ and
# stopped by process group on `make down` (Ctrl-C on standalone can leave its workers running).
set -euo pipefail
cd "$(dirname "$0")/.."
UP=.up
STATE="$UP/s3.json"
export NCF_BUCKET="${NCF_BUCKET:-ncf-demo}"
PORT="${AIRFLOW_PORT:-8080}"
S3_DATA_DIR="${S3_DATA_DIR:-.data/s3}"   # where the embedded endpoint persists its buckets

stop() {
  if [ -f "$UP/airflow.pgid" ]; then
    pg="$(cat "$UP/airflow.pgid")"
    kill -TERM -- "-$pg" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pg" 2>/dev/null || true
    rm -f "$UP/airflow.pgid"
    echo "stopped Airflow standalone"
  fi
  if [ -f "$STATE" ]; then
    python -m ncf_tasks.dev.local_s3 stop --state "$STATE"
    echo "stopped the embedded S3 endpoint"
  fi
}

start() {
  mkdir -p "$UP"
  stop >/dev/null
  # another Airflow (an earlier `make up` of another checkout, a test run) on these ports would answer our
  # health check and our browser in its place: refuse clearly instead
  for p in "$PORT" 8793 8794; do
    if ! python -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', int(sys.argv[1])))" "$p" 2>/dev/null; then
      echo "port $p is in use by another process (another Airflow? \`make down\` in its checkout, or AIRFLOW_PORT=...);" \
           "not starting" >&2
      return 1
    fi
  done
  python -m ncf_tasks.dev.local_s3 start --state "$STATE" --bucket "$NCF_BUCKET" --log "$UP/s3.log" --data-dir "$S3_DATA_DIR" >/dev/null
  NCF_S3_ENDPOINT_URL="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$STATE")"
  export NCF_S3_ENDPOINT_URL NCF_S3_ACCESS_KEY_ID=testing NCF_S3_SECRET_ACCESS_KEY=testing
  echo "embedded S3 endpoint $NCF_S3_ENDPOINT_URL, bucket $NCF_BUCKET"
  LAST_DAY="$(date -u -d "$(date -u +%F) - 1 day" +%F)"
  # the sample logs load while the metadata DB migrates (both mostly interpreter start-up); standalone starts
  # after both: unpaused at creation, the nightly DAG's latest 02:00 run starts at once and must find the logs
  bash include/sample_data.sh "$LAST_DAY" >"$UP/sample-data.log" 2>&1 &
  local sample=$!

  export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT="$PORT"
  export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False   # nightly at 02:00; nothing runs before that
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
  mkdir -p "$AIRFLOW_HOME"
  [ -f "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ] \
    || python -c "import json,secrets,sys; json.dump({'admin': secrets.token_urlsafe(12)}, open(sys.argv[1], 'w'))" \
         "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
  airflow db migrate >"$UP/airflow-db.log" 2>&1 || { tail -n 20 "$UP/airflow-db.log" >&2; wait "$sample" || true; stop; return 1; }
  if ! wait "$sample"; then
    tail -n 30 "$UP/sample-data.log" >&2
    echo "loading the sample logs failed; see $UP/sample-data.log" >&2
    stop
    return 1
  fi
  cat "$UP/sample-data.log"
  setsid airflow standalone >"$UP/airflow.log" 2>&1 < /dev/null &
  echo $! > "$UP/airflow.pgid"
  echo -n "waiting for the Airflow UI on http://127.0.0.1:$PORT "
  for _ in $(seq 1 180); do
    if curl -fsS "http://127.0.0.1:$PORT/api/v2/monitor/health" 2>/dev/null | grep -q '"dag_processor"'; then
      echo " up"
      echo "UI:    http://127.0.0.1:$PORT"
      echo "login: admin / $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")"
      echo "S3:    $NCF_S3_ENDPOINT_URL (bucket $NCF_BUCKET; key/secret: testing)"
      echo "logs:  $UP/airflow.log ; stop everything with: make down"
      echo "files: $S3_DATA_DIR/$NCF_BUCKET/ mirrors the bucket every few seconds and survives make down; after a run:"
      echo "       $S3_DATA_DIR/$NCF_BUCKET/reports/index.html (runs dashboard), runs/<run>/report.html, reports/validation/dt=<day>/index.html"
      return 0
    fi
    echo -n "."; sleep 1
  done
  echo " Airflow did not come up in 180 s; see $UP/airflow.log" >&2
  tail -n 30 "$UP/airflow.log" >&2
  stop
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
