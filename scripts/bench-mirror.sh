#!/usr/bin/env bash
# The same model (default one 2 GiB file) downloaded with snapshot_download directly from an
# upstream kaiyuan, through a kaiyuan mirror on a cold cache (fetch, digest check and scan
# included), and through the mirror warm; the scan time reported apart, and the mirror's peak
# RSS. Each measure is the best of two (two fresh mirrors for the cold one): on this project's
# virtual machine, writing into memory freed more than a second earlier costs up to 1.5 ms per
# MiB of kernel time (the host backs the pages again), which moves single runs by seconds.
# Both hubs on loopback, release build, embedded defaults.
#   scripts/bench-mirror.sh [SIZE_MIB]     (default 2048)
#   UPSTREAM_MBPS=200 scripts/bench-mirror.sh   (the upstream behind a 200 MB/s link)
#   UPSTREAM_CONN_MBPS=40 scripts/bench-mirror.sh   (40 MB/s for each connection to the upstream)
#   SHARDS=4 scripts/bench-mirror.sh   (the weights in four files)
#   SMALL_FILES=24 UPSTREAM_RTT_MS=100 scripts/bench-mirror.sh   (24 small files more; a 100 ms round trip)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-2048}"
source scripts/bench-lib.sh
bench_setup
bench_workdir mirrorbench
unset DATABASE_URL KAIYUAN_DATABASE_URL KAIYUAN_STORE_URL KAIYUAN_UPSTREAM KAIYUAN_UPSTREAM_TOKEN
bytes=$((size_mib << 20))

# SHARDS=N splits the weights into N files, as large models are published.
shards="${SHARDS:-1}"
mkdir -p "$work/model"
for i in $(seq "$shards"); do
  file="$work/model/model.safetensors"
  [ "$shards" = 1 ] || file=$(printf '%s/model/model-%05d-of-%05d.safetensors' "$work" "$i" "$shards")
  (set +o pipefail
   printf '\x20\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"format":"pt"}}' >"$file"
   openssl enc -aes-128-ctr -nosalt -pass pass:"mirror$i" -in /dev/zero 2>/dev/null | head -c $((bytes / shards - 40)) >>"$file")
done
printf -- '---\nlicense: mit\n---\n# bench\n' >"$work/model/README.md"
# SMALL_FILES=N adds N small files (configurations, tokenizers: a request each).
for i in $(seq "${SMALL_FILES:-0}"); do
  head -c 2048 /dev/urandom | base64 -w0 | sed 's/.*/{"part": "&"}/' >"$(printf '%s/model/small-%03d.json' "$work" "$i")"
done

up_port=$(free_port) mirror_port=$(free_port)
start_hub upstream "$up_port" ""
token=$(RUST_LOG=warn "$bin" --config "$work/upstream.toml" admin create-user bench --admin --data-dir "$work/upstream" | tail -1)
upstream="http://127.0.0.1:$up_port"
HF_ENDPOINT="$upstream" HF_TOKEN="$token" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
  "$py" -c "from huggingface_hub import HfApi; a = HfApi(); a.create_repo('bench/model'); a.upload_folder(folder_path='$work/model', repo_id='bench/model')" >/dev/null
# UPSTREAM_MBPS=N puts a link of N MB/s between the upstream and everyone who reads from it
# (the direct client and the mirrors), as a public hub is far away; the mirror's own clients
# stay on loopback. Unset: every hop is loopback.
# UPSTREAM_CONN_MBPS=N instead gives each connection to the upstream N MB/s of its own, as a
# distant server does (one stream's rate is its window over the round trip).
# UPSTREAM_RTT_MS=N adds a round trip of N ms to every exchange with the upstream.
link="loopback"
if [ -n "${UPSTREAM_MBPS:-}${UPSTREAM_CONN_MBPS:-}${UPSTREAM_RTT_MS:-}" ]; then
  link_port=$(free_port)
  if [ -n "${UPSTREAM_CONN_MBPS:-}" ]; then
    proxy_args=("$UPSTREAM_CONN_MBPS" per-connection)
    link="$UPSTREAM_CONN_MBPS MB/s per connection to the upstream"
  elif [ -n "${UPSTREAM_MBPS:-}" ]; then
    proxy_args=("$UPSTREAM_MBPS")
    link="$UPSTREAM_MBPS MB/s to the upstream"
  else
    proxy_args=(0)
    link="no rate limit to the upstream"
  fi
  if [ -n "${UPSTREAM_RTT_MS:-}" ]; then
    proxy_args+=("rtt=$UPSTREAM_RTT_MS")
    link="$link, $UPSTREAM_RTT_MS ms round trip"
  fi
  cargo build --quiet --release -p kaiyuan-tests --example link
  "$target/release/examples/link" "$link_port" "127.0.0.1:$up_port" "${proxy_args[@]}" &
  pids+=($!)
  for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$link_port") 2>/dev/null && break; sleep 0.1; done
  upstream="http://127.0.0.1:$link_port"
fi
# Two mirrors, for two cold reads; the client waits for a cold fetch instead of being told to
# retry.
mirror_config=$(printf '[mirror]\nupstream = "%s"\nwait_secs = 600\nsync_secs = 0\n' "$upstream")
start_hub mirror "$mirror_port" "$mirror_config"
mirror="http://127.0.0.1:$mirror_port"
mirror_pid=${pids[-1]}
second_port=$(free_port)
start_hub mirror2 "$second_port" "$mirror_config"
second="http://127.0.0.1:$second_port"
sync

download() { # endpoint
  local start; start=$(now)
  HF_ENDPOINT="$1" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_ETAG_TIMEOUT=600 HF_HUB_DOWNLOAD_TIMEOUT=600 \
    "$py" -c "from huggingface_hub import snapshot_download; snapshot_download('bench/model', cache_dir='$work/cache')" >/dev/null
  secs "$start" "$(now)"
  local snapshot; snapshot=$(dirname "$(find "$work/cache" -name README.md)")
  for file in "$work"/model/*; do
    cmp -s "$snapshot/$(basename "$file")" "$file" || { echo "$(basename "$file") differs via $1" >&2; exit 1; }
  done
  rm -rf "$work/cache"
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
direct=$(best "$(download "$upstream")" "$(download "$upstream")")
cold_runs="$(download "$second") $(download "$mirror")"
cold=$(best $cold_runs)
rss_cold_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$mirror_pid/status")
warm=$(best "$(download "$mirror")" "$(download "$mirror")")
# The scan alone, as the cold path ran it (the same scanner, on the same bytes).
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$mirror_pid/status")
scan_start=$(now)
"$bin" --config "$work/mirror.toml" scan "$work"/model/*.safetensors >/dev/null || true
scan_s=$(secs "$scan_start" "$(now)")

# The physical floor of a cold read on this machine: the file is written twice (into the
# mirror's store, then into the client's cache), so cold cannot beat direct plus one durable
# write of the file.
disk_start=$(now)
cat "$work"/model/*.safetensors | dd of="$work/disk-floor" bs=8M iflag=fullblock conv=fdatasync status=none
disk_s=$(secs "$disk_start" "$(now)")
rm -f "$work/disk-floor"

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "model: $bytes bytes of weights in $shards file(s) + README + ${SMALL_FILES:-0} small files; best of two runs each; MB/s = 10^6 bytes per second; link: $link"
printf '%-44s %9s %8s\n' measure seconds MB/s
printf '%-44s %9s %8s\n' "snapshot_download, upstream directly" "$direct" "$(mbps "$direct")"
printf '%-44s %9s %8s\n' "snapshot_download, mirror cold ($cold_runs)" "$cold" "$(mbps "$cold")"
printf '%-44s %9s %8s\n' "snapshot_download, mirror warm" "$warm" "$(mbps "$warm")"
printf '%-44s %9s\n' "kaiyuan scan of the same file (part of cold)" "$scan_s"
echo "warm / direct throughput: $(ratio "$direct" "$warm")   (target >= 0.9)"
echo "cold / direct time: $(ratio "$cold" "$direct")   (target <= 1.5, plus the scan)"
printf '%-44s %9s %8s\n' "one durable write of the file (dd, fdatasync)" "$disk_s" "$(mbps "$disk_s")"
echo "cold / (direct + one durable write): $(awk -v c="$cold" -v d="$direct" -v w="$disk_s" 'BEGIN { printf "%.2f", c / (d + w) }')   (1.00 = the disk's floor)"
echo "cold minus scan / direct time: $(awk -v c="$cold" -v s="$scan_s" -v d="$direct" 'BEGIN { printf "%.2f", (c - s) / d }')"
echo "mirror peak RSS: $((rss_kib / 1024)) MiB   (target < 200 MiB; $((rss_cold_kib / 1024)) MiB after its cold read)"
