#!/usr/bin/env bash
# The transparency log's costs as it grows (a measurement, not a test). For each size N, fills a
# fresh database on the PostgreSQL at DATABASE_URL with N log entries directly (the body shape the
# hub writes for a publish; leaf hashes and the stored interior hashes computed in SQL, the latter
# by the same backfill as migration 0018), starts the hub on it, and times over HTTP (curl,
# loopback, median of R requests): the first checkpoint (signs and caches), a cached checkpoint,
# inclusion and consistency proofs at random positions, and commits (each appends to the log).
#   scripts/bench-log.sh [N ...]                  (default: 0 20000 1000000)
# Environment: DATABASE_URL (required; a database per size is created and dropped there),
# KAIYUAN_BIN (default: a release build), KAIYUAN_BENCH_BASELINE (optional: a `kaiyuan` binary
# from before stored hashes, e.g. built from a worktree of an older commit; it is timed on the
# same data after the current one, and the ratio printed), R (requests per median, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(0 20000 1000000)
: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server the bench may create databases on}"
reps="${R:-30}"
if [[ -z "${KAIYUAN_BIN:-}" ]]; then
  cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
  KAIYUAN_BIN="${CARGO_TARGET_DIR:-target}/release/kaiyuan"
fi
baseline="${KAIYUAN_BENCH_BASELINE:-}"

work=$(mktemp -d /var/tmp/kaiyuan-bench-log.XXXXXX)
hub_pid=""
stop_hub() { [[ -n "$hub_pid" ]] && kill -INT "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true; hub_pid=""; }
cleanup() { stop_hub; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server_url="${DATABASE_URL%/*}"
ms() { curl -sSf -o /dev/null -w '%{time_total}\n' "$@" | awk '{ printf "%.2f\n", $1 * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

start_hub() { # BIN DB_URL
  local port; port=$(free_port)
  DATABASE_URL="$2" KAIYUAN_STORE_URL="file://$work/store" KAIYUAN_WORKERS=0 RUST_LOG=warn \
    "$1" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/hub.log" 2>&1 &
  hub_pid=$!
  hub="http://127.0.0.1:$port"
  for _ in $(seq 300); do curl -sf "$hub/readyz" >/dev/null && return; sleep 0.1; done
  cat "$work/hub.log" >&2; exit 1
}

# Times one hub on the filled database: prints "first cached inclusion consistency append" in ms.
measure() { # BIN DB_URL N TOKEN REPO
  local n=$3 token=$4 repo=$5 first cached inc con app i size
  start_hub "$1" "$2"
  first=$(ms "$hub/api/v1/log/checkpoint")
  cached=$(for _ in $(seq "$reps"); do ms "$hub/api/v1/log/checkpoint"; done | median)
  size=$(curl -sf "$hub/api/v1/log/checkpoint" | sed -n 2p)
  inc=$(if [[ $size -gt 0 ]]; then for _ in $(seq "$reps"); do ms "$hub/api/v1/log/proof/inclusion?index=$(((RANDOM * 32768 + RANDOM) % size))&tree_size=$size"; done; fi | median)
  con=$(if [[ $size -gt 1 ]]; then for _ in $(seq "$reps"); do ms "$hub/api/v1/log/proof/consistency?first=$(((RANDOM * 32768 + RANDOM) % (size - 1) + 1))&second=$size"; done; fi | median)
  app=$(for i in $(seq "$reps"); do
    ms -H "Authorization: Bearer $token" -H 'content-type: application/json' "$hub/api/v1/repos/bench/$repo/commits/main" \
      -d "{\"message\":\"bench\",\"operations\":[{\"op\":\"put\",\"path\":\"f.txt\",\"content_base64\":\"$(printf '%s' "$i-$RANDOM" | base64)\"}]}"
  done | median)
  stop_hub
  echo "$first $cached $inc $con $app"
}

printf '%-9s %-9s | %-13s %-13s %-13s %-13s %-13s\n' entries fill_s checkpoint_1st checkpoint inclusion consistency commit_append
for n in "${sizes[@]}"; do
  db="kaiyuan_bench_log_$n"
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  url="$server_url/$db"
  DATABASE_URL="$url" RUST_LOG=warn "$KAIYUAN_BIN" migrate >/dev/null 2>&1
  t0=$(date +%s%N)
  # The shape of a publish entry, with distinct commits; then the interior hashes, in SQL.
  psql -q -o /dev/null "$url" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO log_entries (idx, body, leaf_hash)
SELECT i, b, sha256('\x00'::bytea || b)
FROM generate_series(0, $n - 1) AS i,
     LATERAL (SELECT convert_to(json_build_object('kind', 'publish', 'commit', md5(i::text) || md5(i::text || 'x'),
       'branch', 'main', 'parent', NULL, 'files', 3, 'manifest', 'sha256:' || md5(i::text), 'author', 'bench',
       'repository', 'bench/r' || (i % 1000), 'v', 1, 'time', now())::text, 'UTF8') AS b) body;
SELECT log_tree_backfill();
VACUUM ANALYZE log_entries;
VACUUM ANALYZE log_tree;
SQL
  fill=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  token=$(DATABASE_URL="$url" RUST_LOG=warn "$KAIYUAN_BIN" admin create-user bench --admin 2>/dev/null)
  start_hub "$KAIYUAN_BIN" "$url"
  for r in now before; do
    curl -sSf -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "{\"name\":\"$r\"}" "$hub/api/v1/repos"
  done
  stop_hub
  read -r f c i s a < <(measure "$KAIYUAN_BIN" "$url" "$n" "$token" now)
  printf '%-9s %-9s | %-13s %-13s %-13s %-13s %-13s\n' "$n" "$fill" "$f" "$c" "$i" "$s" "$a"
  if [[ -n "$baseline" ]]; then
    # Last: the baseline's appends do not store interior hashes.
    read -r bf bc bi bs ba < <(measure "$baseline" "$url" "$n" "$token" before)
    printf '%-9s %-9s | %-13s %-13s %-13s %-13s %-13s\n' "  before" "" "$bf" "$bc" "$bi" "$bs" "$ba"
    awk -v f="$f" -v c="$c" -v i="$i" -v s="$s" -v a="$a" -v bf="$bf" -v bc="$bc" -v bi="$bi" -v bs="$bs" -v ba="$ba" \
      'function r(x, y) { return (x > 0 && y != "-") ? sprintf("%.1fx", y / x) : "-" }
       BEGIN { printf "%-9s %-9s | %-13s %-13s %-13s %-13s %-13s\n", "  speedup", "", r(f, bf), r(c, bc), r(i, bi), r(s, bs), r(a, ba) }'
  fi
  psql -q "$server_url/postgres" -c "DROP DATABASE $db"
done
echo "(milliseconds, median of $reps over HTTP on loopback, curl included; fill_s: SQL fill and interior-hash backfill in seconds)"
