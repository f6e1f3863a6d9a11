#!/usr/bin/env bash
# Installs ONNX Runtime's shared library for model verification: the one inside the
# `onnxruntime` wheel from PyPI (ort's load-dynamic), or the CUDA build from `onnxruntime-gpu`.
#   scripts/install-onnxruntime.sh cpu|gpu...
# Extracted to $KAIYUAN_ORT_DIR/{cpu,gpu} (default ~/.cache/kaiyuan/onnxruntime), with a
# libonnxruntime.so link and a VERSION file; a folder already holding this version is left alone.
# Needs python3 with pip. Called by scripts/install-deps.sh and by the Dockerfile.
set -euo pipefail

ort_version=1.31.1
ort_dir="${KAIYUAN_ORT_DIR:-$HOME/.cache/kaiyuan/onnxruntime}"

install_onnxruntime() {
  local flavour=$1 package=$2 target="$ort_dir/$1"
  [[ -f "$target/VERSION" && "$(cat "$target/VERSION")" == "$ort_version" ]] && return 0
  echo "installing ONNX Runtime $ort_version ($package wheel) into $target..." >&2
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: "$package==$ort_version" -d "$tmp"
  mkdir -p "$target"
  python3 - "$tmp"/*.whl "$target" <<'PY'
import sys, zipfile, os
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
            with z.open(name) as src, open(os.path.join(target, base), "wb") as dst:
                dst.write(src.read())
PY
  ln -sf "libonnxruntime.so.$ort_version" "$target/libonnxruntime.so"
  echo "$ort_version" > "$target/VERSION"
  rm -rf "$tmp"
}

[[ $# -gt 0 ]] || { echo "usage: $0 cpu|gpu..." >&2; exit 2; }
for flavour in "$@"; do
  case "$flavour" in
    cpu) install_onnxruntime cpu onnxruntime ;;
    gpu) install_onnxruntime gpu onnxruntime-gpu ;;
    *) echo "$0: unknown flavour \`$flavour\` (expected cpu or gpu)" >&2; exit 2 ;;
  esac
done
