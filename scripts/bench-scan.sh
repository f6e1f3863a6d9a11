#!/usr/bin/env bash
# Scanner benchmark: kaiyuan's scanner against picklescan and modelscan (PyPI), in the same run,
# on a ~1 GiB PyTorch zip checkpoint, a ~200 MiB pickle of many small objects and a ~2 GiB
# safetensors file (wall time and peak RSS, with ratios), then on the shared corpus (detections
# and false positives).
#   scripts/bench-scan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
bin="$target/release/kaiyuan"
venv="${KAIYUAN_BENCH_VENV:-$HOME/.cache/kaiyuan/bench-venv}"
if [[ ! -x "$venv/bin/modelscan" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q picklescan==1.0.5 modelscan==0.8.8
fi
work=$(mktemp -d /var/tmp/kaiyuan-scanbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 scripts/bench_scan_files.py "$work/files"

# Runs a command under GNU time; prints "seconds peak_MiB exit".
measure() {
  local start end kib code
  start=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$work/time" "$@" >"$work/out" 2>&1 && code=0 || code=$?
  end=$(date +%s%N)
  kib=$(tail -n 1 "$work/time")
  echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') $((kib / 1024)) $code"
}

printf '\n%-20s %-11s %9s %9s %5s\n' file tool seconds peak_MiB exit
for file in checkpoint.pt many_objects.pkl model.safetensors; do
  path="$work/files/$file"
  for tool in kaiyuan picklescan modelscan; do
    case $tool in
      kaiyuan) cmd=("$bin" scan "$path") ;;
      picklescan) cmd=("$venv/bin/picklescan" -p "$path") ;;
      modelscan) cmd=("$venv/bin/modelscan" -p "$path") ;;
    esac
    read -r secs mib code < <(measure "${cmd[@]}")
    printf '%-20s %-11s %9s %9s %5s\n' "$file" "$tool" "$secs" "$mib" "$code"
    echo "$file $tool $secs $mib" >>"$work/results"
  done
done
echo
awk '{ t[$1" "$2]=$3; m[$1" "$2]=$4; files[$1]=1 }
  END { for (f in files) {
    best = t[f" picklescan"] < t[f" modelscan"] ? t[f" picklescan"] : t[f" modelscan"];
    k = t[f" kaiyuan"] > 0 ? t[f" kaiyuan"] : 0.001;
    printf "%-20s fastest anchor / kaiyuan time = %.1fx   kaiyuan peak RSS = %d MiB\n", f, best / k, m[f" kaiyuan"] } }' "$work/results"

# The shared corpus: what each tool flags (non-zero exit), against the manifest.
corpus=tests/corpus/scan
if [[ -f "$corpus/manifest.csv" ]]; then
  echo
  printf '%-10s %-10s %8s %8s\n' tool expected files flagged
  tail -n +2 "$corpus/manifest.csv" | cut -d, -f1,3 | tr ',' ' ' | while read -r file expected; do
    for tool in kaiyuan picklescan modelscan; do
      case $tool in
        kaiyuan) "$bin" scan "$corpus/$file" >/dev/null 2>&1 && code=0 || code=$? ;;
        picklescan) "$venv/bin/picklescan" -p "$corpus/$file" >/dev/null 2>&1 && code=0 || code=$? ;;
        modelscan) "$venv/bin/modelscan" -p "$corpus/$file" >/dev/null 2>&1 && code=0 || code=$? ;;
      esac
      echo "$tool $expected $([[ $code -ne 0 ]] && echo 1 || echo 0)"
    done
  done | awk '{ n[$1" "$2]++; f[$1" "$2]+=$3 } END { for (k in n) { split(k, p, " "); printf "%-10s %-10s %8d %8d\n", p[1], p[2], n[k], f[k] } }' | sort
fi
