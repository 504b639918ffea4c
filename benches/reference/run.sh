#!/usr/bin/env bash
# The issue's reference: "PostgreSQL alone sustains about 3,500 three-commit
# job lifecycles per second (claim with a partial index, ack, result;
# prepared statements)" on the machine the targets were set on. Run it on
# the machine the benchmark runs on to scale the targets to that machine:
#   [BATCH=10] benches/reference/run.sh [psql connection options, default -h 127.0.0.1 -U postgres postgres]
# BATCH=10 claims 10 jobs per poll (lifecycle10.sql), the issue's "about
# 4,400 when claiming 10 per poll"; "lifecycles/s" counts jobs either way.
# It creates and drops the table ref_job in that database.
set -euo pipefail
cd "$(dirname "$0")"
conn=("$@")
[ ${#conn[@]} -gt 0 ] || conn=(-h 127.0.0.1 -U postgres postgres)
batch=${BATCH:-1}
case $batch in
    1) script=lifecycle.sql ;;
    10) script=lifecycle10.sql ;;
    *) echo "BATCH is 1 or 10" >&2; exit 2 ;;
esac
seconds=${SECONDS_TO_RUN:-30}
# Enough queued jobs for 20,000 lifecycles/s: a claim that finds none fails the run.
psql -q -X -v jobs=$((seconds * 20000)) "${conn[@]}" -f setup.sql
trap 'psql -q -X "${conn[@]}" -c "drop table if exists ref_job"' EXIT
pgbench -n -M prepared -c 16 -j 2 -T "$seconds" -f "$script" "${conn[@]}" |
    awk -v b="$batch" '/^latency/ { print } /^tps/ { print; printf "lifecycles/s = %.0f\n", $3 * b }'
