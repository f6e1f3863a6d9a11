#!/usr/bin/env bash
# Scanner benchmark: kaiyuan's scanner against picklescan and modelscan (PyPI), in the same run,
# on a ~1 GiB PyTorch zip checkpoint, a ~200 MiB pickle of many small objects and a ~2 GiB
# safetensors file (wall time and peak RSS, with ratios), then on the shared corpus (detections
# and false positives), then on the real-world corpus: the model files of the wheels in
# $KAIYUAN_TEST_WHEELS listed in services/scanner/tests/real_wheels.rs (files, bytes, wall time
# and the verdict of each tool per file).
#   scripts/bench-scan.sh                     everything
#   KAIYUAN_BENCH_SKIP_BIG=1 scripts/bench-scan.sh   without the three large generated files
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [[ -z "${KAIYUAN_BENCH_SKIP_BIG:-}" ]]; then
  cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
fi
cargo build --quiet --release -p kaiyuan-scanner --example scan_files
bin="$target/release/kaiyuan"
scan_files="$target/release/examples/scan_files"
venv="${KAIYUAN_BENCH_VENV:-$HOME/.cache/kaiyuan/bench-venv}"
if [[ ! -x "$venv/bin/modelscan" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q picklescan==1.0.5 modelscan==0.8.8
fi
work=$(mktemp -d /var/tmp/kaiyuan-scanbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Runs a command under GNU time; prints "seconds peak_MiB exit".
measure() {
  local start end kib code
  start=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$work/time" "$@" >"$work/out" 2>&1 && code=0 || code=$?
  end=$(date +%s%N)
  kib=$(tail -n 1 "$work/time")
  echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') $((kib / 1024)) $code"
}

if [[ -z "${KAIYUAN_BENCH_SKIP_BIG:-}" ]]; then
python3 scripts/bench_scan_files.py "$work/files"


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
fi

# The shared corpus: what each tool flags (non-zero exit), against the manifest.
corpus=tests/corpus/scan
if [[ -f "$corpus/manifest.csv" ]]; then
  echo
  printf '%-10s %-10s %8s %8s\n' tool expected files flagged
  tail -n +2 "$corpus/manifest.csv" | cut -d, -f1,3 | tr ',' ' ' | while read -r file expected; do
    for tool in kaiyuan picklescan modelscan; do
      case $tool in
        kaiyuan) "$scan_files" "$corpus/$file" >/dev/null 2>&1 && code=0 || code=$? ;;
        picklescan) "$venv/bin/picklescan" -p "$corpus/$file" >/dev/null 2>&1 && code=0 || code=$? ;;
        modelscan) "$venv/bin/modelscan" -p "$corpus/$file" >/dev/null 2>&1 && code=0 || code=$? ;;
      esac
      echo "$tool $expected $([[ $code -ne 0 ]] && echo 1 || echo 0)"
    done
  done | awk '{ n[$1" "$2]++; f[$1" "$2]+=$3 } END { for (k in n) { split(k, p, " "); printf "%-10s %-10s %8d %8d\n", p[1], p[2], n[k], f[k] } }' | sort
fi

# The real-world corpus: model files shipped in PyPI wheels (none is malicious). Each tool runs
# once over all files (so interpreter start-up counts once), then once per file for verdicts.
wheels="${KAIYUAN_TEST_WHEELS:-$HOME/.cache/kaiyuan/wheels}"
if [[ -d "$wheels" ]]; then
  python3 scripts/bench_scan_files.py --real-world services/scanner/tests/real_wheels.rs "$wheels" "$work/real" >"$work/real.list"
  mapfile -t real <"$work/real.list"
  bytes=$(cat "${real[@]}" | wc -c)
  echo
  echo "real-world corpus: ${#real[@]} files, $bytes bytes"
  printf '%-11s %9s\n' tool seconds
  for tool in kaiyuan picklescan modelscan; do
    case $tool in
      kaiyuan) cmd=("$scan_files" "${real[@]}") ;;
      picklescan) cmd=("$venv/bin/picklescan" -p "$work/real") ;;
      modelscan) cmd=("$venv/bin/modelscan" -p "$work/real") ;;
    esac
    read -r secs _ _ < <(measure "${cmd[@]}")
    printf '%-11s %9s\n' "$tool" "$secs"
  done
  # Per file: kaiyuan's verdict; picklescan and modelscan by exit code (0 clean, 1 issues found,
  # 2 scan error; modelscan 3: nothing it supports).
  echo
  printf '| file | bytes | kaiyuan | picklescan | modelscan |\n|---|---|---|---|---|\n'
  for path in "${real[@]}"; do
    verdict=$("$scan_files" "$path" 2>/dev/null | cut -f1,2 | tr '\t' ' ')
    "$venv/bin/picklescan" -p "$path" >/dev/null 2>&1 && ps=0 || ps=$?
    "$venv/bin/modelscan" -p "$path" >/dev/null 2>&1 && ms=0 || ms=$?
    name=${path#"$work/real/"}
    label() { case $1 in 0) echo clean ;; 1) echo "flagged" ;; 2) echo "error" ;; 3) echo "not scanned" ;; *) echo "exit $1" ;; esac; }
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$(wc -c <"$path")" "$verdict" "$(label "$ps")" "$(label "$ms")"
  done
fi
