#!/usr/bin/env bash
# The hub's read costs as its content grows (a measurement, not a test). For each size N, fills
# a fresh database on the PostgreSQL at DATABASE_URL with N repositories through SQL
# (tests/sql/scale-seed.sql: the shapes the API writes, with a head commit and licence
# evaluations), starts the hub on it, and times the main read routes over HTTP (curl, loopback):
# p50 and p95 of R requests each, then each route's p50 as a ratio of the smallest size's.
#   scripts/bench-scale.sh [N ...]                 (default: 10000 100000 1000000)
# Environment: DATABASE_URL (required; a database per size is created and dropped there),
# KAIYUAN_BIN (default: a release build), R (requests per route, default 40).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(10000 100000 1000000)
: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server the bench may create databases on}"
reps="${R:-40}"
if [[ -z "${KAIYUAN_BIN:-}" ]]; then
  cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
  KAIYUAN_BIN="${CARGO_TARGET_DIR:-target}/release/kaiyuan"
fi

work=$(mktemp -d /var/tmp/kaiyuan-bench-scale.XXXXXX)
hub_pid=""
stop_hub() { [[ -n "$hub_pid" ]] && kill -INT "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true; hub_pid=""; }
cleanup() { stop_hub; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server_url="${DATABASE_URL%/*}"

# The routes, as "label path": text searches (rare and common words, a name fragment), the sorts
# and filters (text searches ranked unless a sort is given), Hugging Face's list_models with the
# same and its tag filter, the web search page with text and with the head-fact filters (rare
# values: one repository in a thousand; a common one), the log head.
routes=(
  "api-text-rare /api/v1/repos?q=word4242"
  "api-text-common /api/v1/repos?q=vision"
  "api-text-by-date /api/v1/repos?q=vision&sort=updated"
  "api-name-fragment /api/v1/repos?q=org-7/model-12"
  "api-sort-name /api/v1/repos?sort=name"
  "api-license /api/v1/repos?license=apache-2.0"
  "api-newest /api/v1/repos"
  "hf-search /api/models?search=word4242"
  "hf-license /api/models?filter=license:mit"
  "hf-sort-name /api/models?sort=id&direction=1"
  "hf-tag-rare /api/models?filter=tag42"
  "hf-tag-common /api/models?filter=translation"
  "web-search /?q=word4242"
  "web-verif-rare /?verification=failed"
  "web-deny-rare /?commercial=no"
  "web-category-rare /?category=non-commercial"
  "web-quarantined /?scan=quarantined"
  "web-commercial /?commercial=yes"
  "log-checkpoint /api/v1/log/checkpoint"
)

# p50 and p95 in ms of R requests to one URL.
times() {
  for _ in $(seq "$reps"); do
    curl -sS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "$1"
  done | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.1f %.1f\n", v[int((NR + 1) / 2)], v[int(NR * 0.95 + 0.5)] }'
}

declare -A base
printf '%-10s %-7s | %-18s %9s %9s %9s\n' repos fill_s route p50_ms p95_ms ratio
for n in "${sizes[@]}"; do
  db="kaiyuan_bench_scale_$n"
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  url="$server_url/$db"
  DATABASE_URL="$url" RUST_LOG=warn "$KAIYUAN_BIN" migrate >/dev/null 2>&1
  t0=$(date +%s%N)
  sed "s/\\\$1/$n/g" tests/sql/scale-seed.sql | psql -q -o /dev/null "$url" -v ON_ERROR_STOP=1
  psql -q "$url" -c "VACUUM ANALYZE" 2>/dev/null
  fill=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')
  token=$(DATABASE_URL="$url" RUST_LOG=warn "$KAIYUAN_BIN" admin create-user bench 2>/dev/null)
  port=$(free_port)
  DATABASE_URL="$url" KAIYUAN_STORE_URL="file://$work/store" KAIYUAN_WORKERS=0 RUST_LOG=warn \
    "$KAIYUAN_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/hub.log" 2>&1 &
  hub_pid=$!
  hub="http://127.0.0.1:$port"
  for _ in $(seq 300); do curl -sf "$hub/readyz" >/dev/null && break; sleep 0.1; done
  for route in "${routes[@]}"; do
    label=${route%% *}
    read -r p50 p95 < <(times "$hub${route#* }")
    [[ -z "${base[$label]:-}" ]] && base[$label]=$p50
    ratio=$(awk -v a="$p50" -v b="${base[$label]}" 'BEGIN { printf "%.1fx", (b > 0) ? a / b : 0 }')
    printf '%-10s %-7s | %-18s %9s %9s %9s\n' "$n" "$fill" "$label" "$p50" "$p95" "$ratio"
  done
  stop_hub
  psql -q "$server_url/postgres" -c "DROP DATABASE $db"
done
echo "(p50/p95 in ms over HTTP on loopback, curl included, $reps requests each; ratio: p50 against the first size)"
