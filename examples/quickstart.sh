#!/usr/bin/env bash
# The driftloop quickstart: create the example project, register its source, ingest
# batches (one of them bad), look at versions, profiles and quarantine, read the
# data back as it was known between two ingests, build features, then train,
# evaluate and register the example model and read its report and model card.
#
# Run from the repository root with the virtualenv on PATH: `make quickstart`.
set -euo pipefail

PROJECT=build/demo-project

step() {
    printf '\n==> %s\n' "$*"
}

step "Create a fresh example project in $PROJECT"
rm -rf "$PROJECT"
mkdir -p "$(dirname "$PROJECT")"
driftloop init "$PROJECT"
cd "$PROJECT"

step "Register the definitions (the transactions source and its contract)"
driftloop apply

step "Ingest the first batch"
driftloop data ingest transactions data/transactions-1.csv

# A moment between the two ingests: reading "as of" it sees only the first batch.
BETWEEN=$(python -c 'from datetime import UTC, datetime; print(datetime.now(UTC).isoformat())')

step "Ingest the second batch"
driftloop data ingest transactions data/transactions-2.csv

step "Ingest the first batch again: same content, so the same version (a duplicate)"
driftloop data ingest transactions data/transactions-1.csv

step "Ingest a bad batch: it is rejected (exit 3) and kept in quarantine"
status=0
driftloop data ingest transactions data/transactions-bad.csv || status=$?
if [ "$status" -ne 3 ]; then
    echo "expected exit code 3 for the bad batch, got $status" >&2
    exit 1
fi
echo "(exit code $status: rejected, as expected)"

step "List the dataset versions"
driftloop data list

FIRST=$(driftloop data list --json \
    | python -c 'import json, sys; print(json.load(sys.stdin)["versions"][0]["id"][:12])')

step "Show the first version: metadata, provenance, profile"
driftloop data show "$FIRST"

step "List the quarantine"
driftloop data quarantine list

step "Profile the transactions source (both batches)"
driftloop data profile transactions

step "Export the data as known at $BETWEEN (time travel: only the first batch)"
driftloop data export transactions --as-of "$BETWEEN" --output export/transactions-asof.parquet
ROWS=$(python -c 'import pyarrow.parquet as pq; print(pq.read_metadata("export/transactions-asof.parquet").num_rows)')
echo "the export holds $ROWS rows"
if [ "$ROWS" -ne 2000 ]; then
    echo "expected the 2000 rows of the first batch only" >&2
    exit 1
fi

step "Feature views registered by apply: latest values and windowed aggregates per customer"
driftloop features list

step "Labels to train on: each transaction's customer, time and fraud flag"
driftloop data export transactions --columns customer_id,event_time,is_fraud --output export/labels.parquet

step "A point-in-time correct training set: features as known at each label's time"
driftloop features training-set --entities export/labels.parquet \
    --features last_transaction:amount,last_transaction:channel,customer_spend:* \
    --output export/training.parquet

step "Materialize the latest values into the online store (SQLite)"
driftloop materialize

CUSTOMER=$(python -c 'import pyarrow.parquet as pq; print(pq.read_table("export/labels.parquet").column("customer_id")[0])')
step "Online features of customer $CUSTOMER, with their age"
driftloop features online --features last_transaction:*,customer_spend:* --key customer_id="$CUSTOMER"

step "Train the example model: features as known at each label's time, a time split, a fit in a child process"
# Train "as of" a fixed time, so that the second training below sees exactly the same
# labels (in this example a label becomes known a day after its payment).
AS_OF=$(python -c 'from datetime import UTC, datetime; print(datetime.now(UTC).isoformat())')
driftloop train fraud --as-of "$AS_OF" --promote --report report/fraud-v1.html
echo "(no champion yet: change gates are skipped; --promote made version 1 champion)"

step "Train again on the same data: compared with the champion on the same rows, same artifact"
driftloop train fraud --as-of "$AS_OF" --report report/fraud-v2.html
python - <<'PY'
import json, subprocess
digests = [json.loads(subprocess.check_output(["driftloop", "models", "show", "fraud", v, "--json"]))["artifact_digest"] for v in ("1", "2")]
print("same artifact bytes:", digests[0] == digests[1], digests[0][:12])
assert digests[0] == digests[1], "a deterministic training must give the same artifact"
PY

step "Versions, aliases and runs"
driftloop models list
driftloop models runs fraud

step "What differs between the two versions (metrics, parameters, features, data)"
driftloop models diff fraud 1 2

step "The evaluation report of version 2 against the champion"
driftloop models report fraud 2

step "Model card of version 2 (also as HTML)"
driftloop models card fraud 2 --html report/fraud-v2-card.html --output report/fraud-v2-card.md
head -n 20 report/fraud-v2-card.md

step "Promote version 2 by compare-and-set (only if champion is still version 1), then roll back"
driftloop models alias fraud champion 2 --expected 1 --reason "passed its gates against v1"
driftloop models rollback fraud --reason "demo: back to the previous champion"
driftloop models history fraud --alias champion

step "Serve the champion over HTTP (2 workers), predict, start a canary, send a label"
PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
driftloop serve --port "$PORT" --workers 2 --log-level warning &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/readyz"; echo
curl -sf "http://127.0.0.1:$PORT/v1/models/fraud/predict" -H 'x-request-id: demo-1' \
  -d '{"keys": {"customer_id": "cu_0001"}}'; echo
driftloop deploy fraud --canary 2 --weight 50 --reason "demo: half the customers on v2"
sleep 1   # workers pick the change up within a second
python - "$PORT" <<'PY'
import sys
from driftloop.client import Client

with Client(f"http://127.0.0.1:{sys.argv[1]}") as client:
    answer = client.predict("fraud", [{"keys": {"customer_id": f"cu_{i:04d}"}} for i in range(1, 9)])
    for i, p in enumerate(answer.predictions, 1):
        print(f"cu_{i:04d}: version {p.version} ({p.role}), P(fraud) = {p.score:.3f}")
    print("labels stored:", client.feedback("fraud", False, request_id="demo-1"))
    batch = client.predict("fraud", [{"keys": {"customer_id": f"cu_{i:04d}"}} for i in range(1, 301)])
    print(f"a batch of {len(batch.predictions)} predictions for monitoring")
PY
curl -sf "http://127.0.0.1:$PORT/metrics" | grep '^driftloop_predictions_total'
kill "$SERVER" && wait "$SERVER" || true
driftloop deploy fraud --abort --reason "demo over"
python - <<'PY'
from driftloop.serving.predictionlog import read_log
log = read_log(".driftloop/predictions", "fraud")
print(f"prediction log: {log.num_rows} records; columns: {', '.join(log.column_names[:9])}, ...")
PY

step "Monitor the latest 300 predictions against the training data of the version that served them"
driftloop monitor run fraud --last 300
driftloop monitor alerts fraud

step "Project status"
driftloop status

step "Done: the project is in $PROJECT"
