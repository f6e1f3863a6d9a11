#!/usr/bin/env bash
# Model-signing benchmark: `kaiyuan sign` / `kaiyuan sign verify` against the OpenSSF
# `model_signing` tool (1.1.1, PyPI) on the same folder in the same run. The floor: OpenSSL's
# SHA-256 over the same bytes, one process per core (both tools must hash every byte). Wall
# time, peak RSS, ratios.
#   scripts/bench-sign.sh [GiB, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
gib="${1:-2}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
bin="$target/release/kaiyuan"
venv="${KAIYUAN_BENCH_VENV:-$HOME/.cache/kaiyuan/bench-sign-venv}"
if [[ ! -x "$venv/bin/model_signing" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q model-signing==1.1.1 pyopenssl==26.4.0
fi
work=$(mktemp -d /var/tmp/kaiyuan-signbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
model="$work/model"
mkdir -p "$model/tokenizer"
# Four weight shards of random bytes plus small files, as a sharded checkpoint looks.
for i in 1 2 3 4; do
  # Pseudo-random bytes at GB/s: AES-CTR over zeros (urandom is ten times slower).
  head -c "$((gib * 1024 * 1024 * 1024 / 4))" /dev/zero \
    | openssl enc -aes-128-ctr -nosalt -pass "pass:shard$i" -pbkdf2 > "$model/model-0000$i-of-00004.safetensors"
done
echo '{"architectures": ["LlamaForCausalLM"]}' > "$model/config.json"
echo 'a b c' > "$model/tokenizer/vocab.txt"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem" 2>/dev/null
openssl ec -in "$work/key.pem" -pubout -out "$work/key.pub" 2>/dev/null
sync

measure() {
  local start end kib code
  start=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$work/time" "$@" >"$work/out" 2>&1 && code=0 || code=$?
  end=$(date +%s%N)
  kib=$(tail -n 1 "$work/time")
  [[ $code == 0 ]] || { cat "$work/out" >&2; }
  echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') $((kib / 1024)) $code"
}

# Warm the page cache so every tool reads from memory.
cat "$model"/*.safetensors > /dev/null
read -r floor _ _ < <(measure sh -c "ls '$model'/*.safetensors | xargs -P $(nproc) -n 1 openssl dgst -sha256")
read -r ks km kc < <(measure "$bin" sign "$model" --key "$work/key.pem" --signature "$work/kaiyuan.sig")
read -r ps pm pc < <(measure "$venv/bin/model_signing" sign key "$model" --private_key "$work/key.pem" --signature "$work/tool.sig")
read -r kv kvm kvc < <(measure "$bin" sign verify "$model" --key "$work/key.pub" --signature "$work/tool.sig")
read -r pv pvm pvc < <(measure "$venv/bin/model_signing" verify key "$model" --public_key "$work/key.pub" --signature "$work/kaiyuan.sig")

printf '\n%s GiB model, %s\n' "$gib" "$(nproc) cores"
printf '%-34s %9s %9s %5s\n' step seconds peak_MiB exit
printf '%-34s %9s %9s %5s\n' "openssl sha256, all cores (floor)" "$floor" - 0
printf '%-34s %9s %9s %5s\n' "kaiyuan sign" "$ks" "$km" "$kc"
printf '%-34s %9s %9s %5s\n' "model_signing sign key" "$ps" "$pm" "$pc"
printf '%-34s %9s %9s %5s\n' "kaiyuan sign verify (tool's sig)" "$kv" "$kvm" "$kvc"
printf '%-34s %9s %9s %5s\n' "model_signing verify (our sig)" "$pv" "$pvm" "$pvc"
awk -v f="$floor" -v ks="$ks" -v ps="$ps" -v kv="$kv" -v pv="$pv" -v g="$gib" 'BEGIN {
  printf "\nsign:   kaiyuan %.0f MiB/s, model_signing %.0f MiB/s: kaiyuan at %.2fx its speed; floor %.0f MiB/s: kaiyuan at %.2fx of it\n", g*1024/ks, g*1024/ps, ps/ks, g*1024/f, f/ks
  printf "verify: kaiyuan %.0f MiB/s, model_signing %.0f MiB/s: kaiyuan at %.2fx its speed; floor %.0f MiB/s: kaiyuan at %.2fx of it\n", g*1024/kv, g*1024/pv, pv/kv, g*1024/f, f/kv
}'
