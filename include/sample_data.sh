#!/usr/bin/env bash
# Sample data for `make demo` and `make up`: a week (DEMO_DAYS, at least 2) of synthetic logs ending LAST_DAY
# in the bucket, and the days before LAST_DAY ingested + validated into the lake (what ncf_ingest backfills
# would do), so that tonight's run trains on a week. Needs NCF_S3_ENDPOINT_URL / NCF_BUCKET etc. in the
# environment.
#   include/sample_data.sh LAST_DAY
set -euo pipefail
LAST_DAY="$1"
DAYS="${DEMO_DAYS:-7}"
[ "$DAYS" -ge 2 ] || { echo "DEMO_DAYS=$DAYS: need at least 2 (LAST_DAY and a day before it)" >&2; exit 2; }
# with NCF_CATALOG_PREFIX set (make demo sets it), also an item catalogue for LAST_DAY with 5% of the items unavailable
CATALOG=()
if [ -n "${NCF_CATALOG_PREFIX:-}" ]; then CATALOG=(--catalog-unavailable 0.05); fi
python -m ncf_tasks generate --end-date "$LAST_DAY" --days "$DAYS" --users "${DEMO_USERS:-1500}" \
  --items "${DEMO_ITEMS:-800}" --events-per-day "${DEMO_EVENTS_PER_DAY:-8000}" --seed 7 "${CATALOG[@]}" 2>/dev/null | tail -n1 \
  | python -c "import json,sys; r=json.load(sys.stdin); c=r['catalog']; print(f\"{r['rows']:,} events in {r['files']} files, days {r['days'][0]}..{r['days'][-1]}, under {r['uri']}\" + (f\"; item catalogue {c['uri']}: {c['unavailable']} of {c['items']} items unavailable\" if c else ''))"
echo "backfilling the $((DAYS - 1)) earlier days into the lake (ingest + validate each, one process):"
FIRST="$(date -u -d "$LAST_DAY - $((DAYS - 1)) day" +%F)"
BEFORE="$(date -u -d "$LAST_DAY - 1 day" +%F)"
python -m ncf_tasks backfill --from "$FIRST" --to "$BEFORE" 2>/dev/null | tail -n1 \
  | python -c "import json,sys; r=json.load(sys.stdin); print(f\"  {r['start']}..{r['end']}: {r['passed']} days passed, {len(r['quarantined'])} quarantined, {r['rows']:,} rows, {r['seconds']}s\"); sys.exit(1 if r['quarantined'] or r['passed'] != r['days'] else 0)"
