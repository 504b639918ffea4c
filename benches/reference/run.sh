#!/usr/bin/env bash
# The issue's reference: "PostgreSQL alone sustains about 3,500 three-commit
# job lifecycles per second (claim with a partial index, ack, result;
# prepared statements)" on the machine the targets were set on. Run it on
# the machine the benchmark runs on to scale the targets to that machine:
#   benches/reference/run.sh [psql connection options, default -h 127.0.0.1 -U postgres postgres]
# It creates and drops the table ref_job in that database.
set -euo pipefail
cd "$(dirname "$0")"
conn=("$@")
[ ${#conn[@]} -gt 0 ] || conn=(-h 127.0.0.1 -U postgres postgres)
psql -q -X "${conn[@]}" -f setup.sql
pgbench -n -M prepared -c 16 -j 2 -T "${SECONDS_TO_RUN:-30}" -f lifecycle.sql "${conn[@]}" | grep -E "^(tps|latency)"
psql -q -X "${conn[@]}" -c "drop table ref_job"
