#!/usr/bin/env bash
# `make demo`: the whole nightly job once, on embedded defaults, then what it produced and where.
#   1. start the embedded S3 endpoint (moto on 127.0.0.1, free port) and create the bucket
#   2. write a week of synthetic interaction logs into raw/interactions/dt=.../
#   3. run the DAG ncf_retrain with `airflow dags test` for tonight's logical date (SQLite, no server),
#      which processes yesterday's logs (NCF_DATE_LAG_DAYS=1), exactly as the 02:00 UTC run would
#   4. print the bucket's content, and stop the endpoint it started (also on failure or Ctrl-C)
# Settings can be changed with NCF_* variables, e.g. `NCF_EPOCHS=3 make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=.demo
mkdir -p "$DEMO"
STATE="$DEMO/s3.json"
export NCF_BUCKET="${NCF_BUCKET:-ncf-demo}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting the embedded S3 endpoint"
python -m ncf_tasks.local_s3 stop --state "$STATE"   # a previous demo that was killed hard
python -m ncf_tasks.local_s3 start --state "$STATE" --bucket "$NCF_BUCKET" --log "$DEMO/s3.log" >/dev/null
trap 'python -m ncf_tasks.local_s3 stop --state "$STATE"; echo "stopped the embedded S3 endpoint"' EXIT
NCF_S3_ENDPOINT_URL="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$STATE")"
export NCF_S3_ENDPOINT_URL NCF_S3_ACCESS_KEY_ID=testing NCF_S3_SECRET_ACCESS_KEY=testing
echo "endpoint $NCF_S3_ENDPOINT_URL, bucket $NCF_BUCKET"

LOGICAL_DAY="$(date -u +%F)"
LAST_DAY="$(date -u -d "$LOGICAL_DAY - 1 day" +%F)"
step "writing a week of sample logs ending $LAST_DAY"
bash include/sample_data.sh "$LAST_DAY"

step "preparing the Airflow metadata database ($AIRFLOW_HOME, SQLite)"
airflow db migrate >"$DEMO/airflow-db.log" 2>&1 || { tail -n 30 "$DEMO/airflow-db.log"; exit 1; }
echo "ok"

step "running DAG ncf_retrain for logical date ${LOGICAL_DAY}T02:00 UTC (processes $LAST_DAY); log: $DEMO/airflow-run.log"
if ! airflow dags test ncf_retrain "${LOGICAL_DAY}T02:00:00+00:00" >"$DEMO/airflow-run.log" 2>&1 \
   || ! grep -q "state=success" "$DEMO/airflow-run.log"; then
  grep -E "ERROR|error|Traceback|raise|Error:" "$DEMO/airflow-run.log" | tail -n 25
  echo "the DAG run failed: full log in $DEMO/airflow-run.log" >&2
  exit 1
fi
grep -oE "(ingested|validation of|built training set|epoch [0-9]+/|gate (PUBLISH|REJECTED):|published|report:) [^\[]*" "$DEMO/airflow-run.log" || true
echo "DAG run succeeded"

step "what the run produced"
python -m ncf_tasks inventory 2>&1 >/dev/null | grep -v " INFO "

step "metrics of the published run, and recommendations read back through ncf_tasks.reader"
python -m ncf_tasks show-latest --users 3 --limit 5 2>&1 >/dev/null | grep -v " INFO "
