#!/usr/bin/env bash
# `make demo`: the whole nightly job once, on embedded defaults, then what it produced and where.
#   1. start the embedded S3 endpoint (moto on 127.0.0.1, free port), persisted in .data/s3/
#   2. write input logs into raw/interactions/dt=.../: a week of synthetic logs (DATA=synthetic, the
#      default), or MovieLens 100K (DATA=movielens-100k, from $ML100K, default ../shared/data/ml-100k/u.data),
#      whose earlier days are ingested and validated by `python -m ncf_tasks backfill`
#   3. run the DAG ncf_retrain with `airflow dags test` (SQLite, no server): for tonight's logical date,
#      which processes yesterday's logs (NCF_DATE_LAG_DAYS=1) as the 02:00 UTC run would, or for the last
#      MovieLens day (param data_date)
#   4. print the bucket's content and the local files to open, and stop the endpoint (also on failure
#      or Ctrl-C); everything stays in .data/s3/ (`make s3-reset` empties it)
# Settings can be changed with NCF_* variables, e.g. `NCF_EPOCHS=3 make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=.demo
mkdir -p "$DEMO"
STATE="$DEMO/s3.json"
DATA="${DATA:-synthetic}"
if [ "$DATA" = movielens-100k ]; then DEFAULT_BUCKET=ncf-movielens; else DEFAULT_BUCKET=ncf-demo; fi
export NCF_BUCKET="${NCF_BUCKET:-$DEFAULT_BUCKET}"   # one bucket per data set: their runs do not mix
ML100K="${ML100K:-../shared/data/ml-100k/u.data}"
S3_DATA_DIR="${S3_DATA_DIR:-.data/s3}"   # where the embedded endpoint persists its buckets

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting the embedded S3 endpoint"
python -m ncf_tasks.dev.local_s3 stop --state "$STATE"   # a previous demo that was killed hard
python -m ncf_tasks.dev.local_s3 start --state "$STATE" --bucket "$NCF_BUCKET" --log "$DEMO/s3.log" --data-dir "$S3_DATA_DIR" >/dev/null
trap 'python -m ncf_tasks.dev.local_s3 stop --state "$STATE"; echo "stopped the embedded S3 endpoint"' EXIT
NCF_S3_ENDPOINT_URL="$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$STATE")"
export NCF_S3_ENDPOINT_URL NCF_S3_ACCESS_KEY_ID=testing NCF_S3_SECRET_ACCESS_KEY=testing
echo "endpoint $NCF_S3_ENDPOINT_URL, bucket $NCF_BUCKET"

LOGICAL_DAY="$(date -u +%F)"
CONF='{}'
case "$DATA" in
  synthetic)
    export NCF_CATALOG_PREFIX="${NCF_CATALOG_PREFIX-catalog/items/}"  # the demo shows the item catalogue too
    LAST_DAY="$(date -u -d "$LOGICAL_DAY - 1 day" +%F)"
    step "writing a week of sample logs ending $LAST_DAY"
    bash include/sample_data.sh "$LAST_DAY" ;;
  movielens-100k)
    [ -f "$ML100K" ] || { echo "MovieLens 100K not found at $ML100K (set ML100K=path/to/u.data)" >&2; exit 2; }
    step "loading MovieLens 100K ($ML100K) as daily raw logs"
    LOADED="$(python -m ncf_tasks load-movielens "$ML100K" 2>"$DEMO/load.log" | tail -n1)"
    FIRST_DAY="$(python -c "import json,sys; print(json.loads(sys.argv[1])['first_day'])" "$LOADED")"
    LAST_DAY="$(python -c "import json,sys; print(json.loads(sys.argv[1])['last_day'])" "$LOADED")"
    BEFORE_LAST="$(date -u -d "$LAST_DAY - 1 day" +%F)"
    step "ingesting and validating $FIRST_DAY .. $BEFORE_LAST (backfill; log: $DEMO/backfill.log)"
    python -m ncf_tasks backfill --from "$FIRST_DAY" --to "$BEFORE_LAST" 2>"$DEMO/backfill.log" | tail -n1 \
      | python -c "import json,sys; r=json.load(sys.stdin); print(f\"{r['passed']} days passed, {len(r['quarantined'])} quarantined, {r['without_logs']} without logs, {r['rows']:,} rows, {r['seconds']}s\")"
    CONF="{\"data_date\": \"$LAST_DAY\"}" ;;
  *) echo "DATA=$DATA: expected synthetic or movielens-100k" >&2; exit 2 ;;
esac

step "preparing the Airflow metadata database ($AIRFLOW_HOME, SQLite)"
airflow db migrate >"$DEMO/airflow-db.log" 2>&1 || { tail -n 30 "$DEMO/airflow-db.log"; exit 1; }
echo "ok"

step "running DAG ncf_retrain for logical date ${LOGICAL_DAY}T02:00 UTC (processes $LAST_DAY); log: $DEMO/airflow-run.log"
if ! airflow dags test ncf_retrain "${LOGICAL_DAY}T02:00:00+00:00" -c "$CONF" >"$DEMO/airflow-run.log" 2>&1 \
   || ! grep -q "state=success" "$DEMO/airflow-run.log"; then
  grep -E "ERROR|error|Traceback|raise|Error:" "$DEMO/airflow-run.log" | tail -n 25
  echo "the DAG run failed: full log in $DEMO/airflow-run.log" >&2
  exit 1
fi
grep -oE "(ingested|validation of|item catalogue|built training set|epoch [0-9]+/|gate (PUBLISH|REJECTED):|published|report:) [^\[]*" "$DEMO/airflow-run.log" || true
echo "DAG run succeeded"

step "what the run produced"
python -m ncf_tasks inventory 2>&1 >/dev/null | grep -v " INFO "

step "metrics of the published run, and recommendations read back through ncf_tasks.reader"
python -m ncf_tasks show-latest --users 3 --limit 5 2>&1 >/dev/null | grep -v " INFO "

step "files to open (kept in .data/s3/ after the demo; make s3-reset empties it)"
python -m ncf_tasks.dev.local_s3 save --state "$STATE"
python -m ncf_tasks.dev.local_s3 paths --state "$STATE"
