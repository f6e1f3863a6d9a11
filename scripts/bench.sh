#!/usr/bin/env bash
# Upload and download one file through the hub's HTTP API on loopback (local-filesystem store) and
# compare, in the same run, with the physical limits (openssl sha256, cp + sync) and a peer (the
# OCI distribution registry, Debian's docker-registry, pushing and pulling the same bytes as a blob).
#   scripts/bench.sh [SIZE_GIB]     (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
size_gib="${1:-4}"
scripts/install-deps.sh
if ! command -v docker-registry >/dev/null; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-registry >/dev/null
fi
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
bin="$target/release/kaiyuan"

work=$(mktemp -d /var/tmp/kaiyuan-bench.XXXXXX)
chmod 755 "$work"
hub_pid="" registry_pid=""
cleanup() {
  [[ -n "$hub_pid" ]] && kill -INT "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true
  [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
source scripts/bench-lib.sh
declare -A secs
timed() { local name=$1; shift; local start; start=$(now); "$@"; secs[$name]=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'); }
# Reads are short and noisy on a shared 2-core machine: best of three, for the hub and the peer alike.
best_of_3() {
  local name=$1; shift; local best=""
  for _ in 1 2 3; do
    timed "$name" "$@"
    best=$(awk -v a="${best:-1e9}" -v b="${secs[$name]}" 'BEGIN { print (b < a) ? b : a }')
  done
  secs[$name]=$best
}

file="$work/blob.bin"
echo "generating ${size_gib} GiB of pseudo-random bytes..." >&2
# openssl is cut off by head's exit (SIGPIPE): only head's status matters here.
(set +o pipefail; openssl enc -aes-128-ctr -nosalt -pass pass:kaiyuan-bench -in /dev/zero 2>/dev/null | head -c $((size_gib << 30)) >"$file")
bytes=$(stat -c %s "$file")
sync # the generated file must not be flushed inside a timed step

timed sha256 openssl dgst -sha256 -out "$work/sha" "$file"
sha=$(awk '{print $NF}' "$work/sha")
timed cp_sync bash -c "cp '$file' '$work/copy.bin' && sync"
rm -f "$work/copy.bin" && sync

# The hub, embedded defaults in a fresh data directory.
pids=()
start_bench_hub
auth="Authorization: Bearer $token"
curl -sSf -H "$auth" -H 'content-type: application/json' -d '{"name":"bench"}' "$hub/api/v1/repos" >/dev/null
timed hub_upload curl -sSf -o /dev/null -H "$auth" -H "x-expected-sha256: $sha" -T "$file" -X POST "$hub/api/v1/repos/bench/bench/uploads"
curl -sSf -o /dev/null -H "$auth" -H 'content-type: application/json' "$hub/api/v1/repos/bench/bench/commits/main" \
  -d "{\"message\":\"bench\",\"operations\":[{\"op\":\"put\",\"path\":\"blob.bin\",\"sha256\":\"$sha\"}]}"
best_of_3 hub_download curl -sSf -o /dev/null "$hub/bench/bench/resolve/main/blob.bin"
hub_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$hub_pid/status")

# The peer: the OCI distribution registry with filesystem storage.
reg_port=$(free_port)
cat >"$work/registry.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$reg_port }
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
reg="http://127.0.0.1:$reg_port"
for _ in $(seq 100); do curl -sf "$reg/v2/" >/dev/null && break; sleep 0.1; done
location=$(curl -sSf -X POST -D - -o /dev/null "$reg/v2/bench/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
[[ "$location" == http* ]] || location="$reg$location"
timed registry_push curl -sSf -o /dev/null -X PUT -H 'content-type: application/octet-stream' -T "$file" "$location&digest=sha256:$sha"
best_of_3 registry_pull curl -sSf -o /dev/null "$reg/v2/bench/blobs/sha256:$sha"

mbps() { awk -v b="$bytes" -v s="${secs[$1]}" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$(mbps "$1")" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
limit=$(( $(mbps sha256) < $(mbps cp_sync) ? $(mbps sha256) : $(mbps cp_sync) ))
echo
echo "file: $bytes bytes; MB/s = 10^6 bytes per second"
printf '%-34s %8s %8s\n' "measure" "seconds" "MB/s"
for m in sha256 cp_sync hub_upload registry_push hub_download registry_pull; do
  printf '%-34s %8s %8s\n' "$m" "${secs[$m]}" "$(mbps $m)"
done
echo
echo "hub upload / min(openssl sha256, cp+sync): $(ratio hub_upload "$limit")   (target >= 0.8)"
echo "hub upload / registry push:                $(ratio hub_upload "$(mbps registry_push)")   (target >= 1.0)"
echo "hub download / registry pull:              $(ratio hub_download "$(mbps registry_pull)")   (target >= 1.0)"
echo "hub peak RSS: $((hub_rss_kib / 1024)) MiB   (target < 150 MiB)"
