#!/usr/bin/env bash
# The reads that grow with one repository's or one organisation's content (a measurement, not a
# test). For each size S, fills a fresh database on the PostgreSQL at DATABASE_URL through SQL, in
# the shapes the API writes:
#   bench/files    one commit of S files (half at the top level, half in 100 folders), S blobs;
#   bench/history  a chain of S commits on `main`, each with one file;
#   bench-org      S repositories with a head on `main` and, for every other one, a stored licence
#                  evaluation (the caller `bench` is a member);
# starts the hub on it and times routes over HTTP (curl, loopback): p50 and p95 of R requests,
# then each route's p50 as a ratio of the first size's. A route whose answer links a next page
# (`Link` or `next_cursor`) is also timed on that next page. Then times `kaiyuan gc` three times
# over 9*S more blob rows, all past the grace period, a ninth of them unreferenced: once removing
# those, once with nothing to remove, and once more after 8*S uploads that no commit holds yet
# (young: kept, and looked at by every run), with its peak RSS.
#   scripts/bench-reads.sh [S ...]                 (default: 1000 100000)
# Environment: DATABASE_URL (required), KAIYUAN_BIN (default: a release build), R (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(1000 100000)
: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server the bench may create databases on}"
reps="${R:-20}"
if [[ -z "${KAIYUAN_BIN:-}" ]]; then
  cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
  KAIYUAN_BIN="${CARGO_TARGET_DIR:-target}/release/kaiyuan"
fi

work=$(mktemp -d /var/tmp/kaiyuan-bench-reads.XXXXXX)
hub_pid=""
stop_hub() { [[ -n "$hub_pid" ]] && kill -INT "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true; hub_pid=""; }
cleanup() { stop_hub; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server_url="${DATABASE_URL%/*}"

# The seed, with :S the size. Commit ids and digests are hashes of a label and a number.
seed() {
  cat <<'SQL'
CREATE FUNCTION pg_temp.cid(label text, n bigint) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT substr(encode(sha256(convert_to(label || n, 'UTF8')), 'hex'), 1, 40) $$;
CREATE FUNCTION pg_temp.dig(label text, n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE
  AS $$ SELECT sha256(convert_to(label || n, 'UTF8')) $$;
INSERT INTO namespaces (name, kind) VALUES ('bench-org', 'org');
INSERT INTO memberships (org_id, user_id, role)
SELECT o.id, u.id, 'read' FROM namespaces o, namespaces u WHERE o.name = 'bench-org' AND u.name = 'bench';
INSERT INTO repositories (namespace_id, name, visibility)
SELECT id, r, 'public' FROM namespaces, unnest(ARRAY['files', 'history']) r WHERE name = 'bench';

-- bench/files: one commit of :S files.
INSERT INTO blobs (sha256, size) SELECT pg_temp.dig('f', g), g FROM generate_series(1, :S) g;
INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message, created_at, file_count, total_size)
SELECT r.id, pg_temp.cid('files', 1), NULL, r.namespace_id, 'bench', 'Files', now(), :S, :S::bigint * (:S + 1) / 2
FROM repositories r WHERE r.full_name = 'bench/files';
INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
SELECT r.id, pg_temp.cid('files', 1),
       CASE WHEN g % 2 = 0 THEN 'layers/' || lpad((g % 100)::text, 3, '0') || '/w' || lpad(g::text, 7, '0') || '.bin'
            ELSE 'f' || lpad(g::text, 7, '0') || '.txt' END,
       pg_temp.dig('f', g), g
FROM repositories r, generate_series(1, :S) g WHERE r.full_name = 'bench/files';
INSERT INTO refs (repository_id, name, kind, commit_id)
SELECT id, 'main', 'branch', pg_temp.cid('files', 1) FROM repositories WHERE full_name = 'bench/files';

-- bench/history: :S commits in a chain, each with one file.
INSERT INTO blobs (sha256, size) VALUES (pg_temp.dig('h', 0), 1);
INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message, created_at, file_count, total_size)
SELECT r.id, pg_temp.cid('h', g), CASE WHEN g > 1 THEN pg_temp.cid('h', g - 1) END, r.namespace_id, 'bench',
       'Commit ' || g, now() - (:S - g) * interval '1 second', 1, 1
FROM repositories r, generate_series(1, :S) g WHERE r.full_name = 'bench/history';
INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
SELECT r.id, pg_temp.cid('h', g), 'README.md', pg_temp.dig('h', 0), 1
FROM repositories r, generate_series(1, :S) g WHERE r.full_name = 'bench/history';
INSERT INTO refs (repository_id, name, kind, commit_id)
SELECT id, 'main', 'branch', pg_temp.cid('h', :S) FROM repositories WHERE full_name = 'bench/history';

-- bench-org: :S repositories with a head, every other one evaluated.
INSERT INTO repositories (namespace_id, name, visibility, license)
SELECT n.id, 'model-' || lpad(g::text, 7, '0'), 'public', (ARRAY['mit', 'llama3'])[1 + g % 2]
FROM namespaces n, generate_series(1, :S) g WHERE n.name = 'bench-org';
INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message, created_at, file_count, total_size)
SELECT r.id, pg_temp.cid('o', r.id), NULL, r.namespace_id, 'bench', 'Initial commit', now(), 0, 0
FROM repositories r JOIN namespaces n ON n.id = r.namespace_id WHERE n.name = 'bench-org';
INSERT INTO refs (repository_id, name, kind, commit_id)
SELECT r.id, 'main', 'branch', pg_temp.cid('o', r.id)
FROM repositories r JOIN namespaces n ON n.id = r.namespace_id WHERE n.name = 'bench-org';
INSERT INTO license_evaluations (repository_id, commit_id, catalog_version, policy_version, decision, effective, report)
SELECT r.id, pg_temp.cid('o', r.id), 'seed', 0, (ARRAY['allow', 'deny', 'flag_review'])[1 + r.id % 3], 'MIT', '{}'::jsonb
FROM repositories r JOIN namespaces n ON n.id = r.namespace_id WHERE n.name = 'bench-org' AND r.id % 2 = 0;

SQL
}

# The garbage collector's load, added once the hub has stopped (its own collector would take it).
gc_seed() {
  cat <<'SQL'
-- 9 * :S more blobs, all a month old: a ninth unreferenced (collected), the others held by the
-- files of a second commit of bench/files (kept).
INSERT INTO blobs (sha256, size, last_seen_at)
SELECT sha256(convert_to('g' || g, 'UTF8')), 1, now() - interval '30 days' FROM generate_series(1, 9 * :S) g;
INSERT INTO commits (repository_id, id, parent_id, author_id, author_name, message, created_at, file_count, total_size)
SELECT r.id, substr(encode(sha256('gc'), 'hex'), 1, 40), NULL, r.namespace_id, 'bench', 'Kept', now(), 8 * :S, 8 * :S
FROM repositories r WHERE r.full_name = 'bench/files';
INSERT INTO commit_files (repository_id, commit_id, path, sha256, size)
SELECT r.id, substr(encode(sha256('gc'), 'hex'), 1, 40), 'k' || g, sha256(convert_to('g' || g, 'UTF8')), 1
FROM repositories r, generate_series(1, 9 * :S) g WHERE r.full_name = 'bench/files' AND g % 9 <> 0;
SQL
}

# Then 8 * :S uploads not committed yet (within the grace period): every run must look at them.
gc_young() {
  cat <<'SQL'
INSERT INTO blobs (sha256, size) SELECT sha256(convert_to('y' || g, 'UTF8')), 1 FROM generate_series(1, 8 * :S) g;
SQL
}

# p50 and p95 in ms of R requests to one URL.
times() {
  for _ in $(seq "$reps"); do
    curl -sS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" "$1"
  done | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.1f %.1f\n", v[int((NR + 1) / 2)], v[int(NR * 0.95 + 0.5)] }'
}

# The next page of a URL's answer: its `Link: <...>; rel="next"`, or its `next_cursor`.
next_page() {
  local headers body link cursor sep
  headers=$(mktemp) body=$(mktemp)
  curl -sS -D "$headers" -o "$body" -H "Authorization: Bearer $token" "$1"
  link=$(grep -i '^link:' "$headers" | sed -E 's/^[Ll]ink: *<([^>]*)>.*/\1/' | tr -d '\r' || true)
  cursor=$(python3 -c 'import json,sys,urllib.parse as u
try: c = json.load(open(sys.argv[1])).get("next_cursor")
except Exception: c = None
print(u.quote(c, safe="") if c else "")' "$body")
  rm -f "$headers" "$body"
  if [[ -n "$link" ]]; then echo "$link"
  elif [[ -n "$cursor" ]]; then sep='?'; [[ "$1" == *\?* ]] && sep='&'; echo "$1${sep}cursor=$cursor"
  fi
}

row() { # label p50 p95
  [[ -z "${base[$1]:-}" ]] && base[$1]=$2
  ratio=$(awk -v a="$2" -v b="${base[$1]}" 'BEGIN { printf "%.1fx", (b > 0) ? a / b : 0 }')
  printf '%-8s %-7s | %-24s %9s %9s %9s\n' "$n" "$fill" "$1" "$2" "$3" "$ratio"
}

declare -A base
printf '%-8s %-7s | %-24s %9s %9s %9s\n' size fill_s route p50_ms p95_ms ratio
for n in "${sizes[@]}"; do
  db="kaiyuan_bench_reads_$n"
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  url="$server_url/$db"
  DATABASE_URL="$url" RUST_LOG=warn "$KAIYUAN_BIN" migrate >/dev/null 2>&1
  token=$(DATABASE_URL="$url" RUST_LOG=warn "$KAIYUAN_BIN" admin create-user bench 2>/dev/null)
  t0=$(date +%s%N)
  seed | psql -q -o /dev/null "$url" -v ON_ERROR_STOP=1 -v S="$n"
  psql -q "$url" -c "VACUUM ANALYZE" 2>/dev/null
  fill=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')
  deep=$(psql -Atq "$url" -c "SELECT substr(encode(sha256(convert_to('h' || ($n / 10), 'UTF8')), 'hex'), 1, 40)")
  port=$(free_port)
  DATABASE_URL="$url" KAIYUAN_STORE_URL="file://$work/store" KAIYUAN_WORKERS=0 RUST_LOG=warn \
    "$KAIYUAN_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/hub.log" 2>&1 &
  hub_pid=$!
  hub="http://127.0.0.1:$port"
  for _ in $(seq 300); do curl -sf "$hub/readyz" >/dev/null && break; sleep 0.1; done
  routes=(
    "tree /api/v1/repos/bench/files/tree/main"
    "tree-folder /api/v1/repos/bench/files/tree/main?path=layers/042"
    "hf-tree /api/models/bench/files/tree/main"
    "hf-tree-recursive /api/models/bench/files/tree/main?recursive=true"
    "hf-tree-folder /api/models/bench/files/tree/main/layers"
    "hf-paths-info POST"
    "history /api/v1/repos/bench/history/commits"
    "history-deep /api/v1/repos/bench/history/commits?revision=$deep"
    "hf-commits /api/models/bench/history/commits/main"
    "license-report /api/v1/orgs/bench-org/license-report"
    "license-report-deny /api/v1/orgs/bench-org/license-report?decision=deny"
    "hf-model-info /api/models/bench/files"
    "model-page /bench/files"
  )
  for route in "${routes[@]}"; do
    label=${route%% *} path=${route#* }
    if [[ "$path" == POST ]]; then
      read -r p50 p95 < <(for _ in $(seq "$reps"); do
        curl -sS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" \
          --data 'paths=f0000001.txt&paths=layers/042&paths=nope' "$hub/api/models/bench/files/paths-info/main"
      done | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.1f %.1f\n", v[int((NR + 1) / 2)], v[int(NR * 0.95 + 0.5)] }')
      row "$label" "$p50" "$p95"
      continue
    fi
    read -r p50 p95 < <(times "$hub$path")
    row "$label" "$p50" "$p95"
    next=$(next_page "$hub$path")
    if [[ -n "$next" ]]; then
      read -r p50 p95 < <(times "$next")
      row "$label+next" "$p50" "$p95"
    fi
  done
  stop_hub
  gc_seed | psql -q -o /dev/null "$url" -v ON_ERROR_STOP=1 -v S="$n"
  psql -q "$url" -c "VACUUM ANALYZE blobs" 2>/dev/null
  for pass in gc-remove gc-scan gc-young; do
    if [[ $pass == gc-young ]]; then
      gc_young | psql -q -o /dev/null "$url" -v ON_ERROR_STOP=1 -v S="$n"
      psql -q "$url" -c "VACUUM ANALYZE blobs" 2>/dev/null
    fi
    t0=$(date +%s%N)
    rss=$( { DATABASE_URL="$url" KAIYUAN_STORE_URL="file://$work/store" RUST_LOG=warn \
      /usr/bin/time -f '%M' "$KAIYUAN_BIN" gc >"$work/gc.json"; } 2>&1 | tail -1)
    ms=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
    row "$pass" "$ms" "-"
    echo "         gc: $(cat "$work/gc.json"), peak RSS ${rss} KiB, blobs left $(psql -Atq "$url" -c 'SELECT count(*) FROM blobs')"
  done
  psql -q "$server_url/postgres" -c "DROP DATABASE $db"
done
echo "(p50/p95 in ms over HTTP on loopback, curl included, $reps requests each; gc rows: one run's wall time;"
echo " ratio: p50 against the first size)"
