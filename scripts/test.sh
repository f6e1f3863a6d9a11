#!/usr/bin/env bash
# Installs what is missing, starts a throwaway PostgreSQL cluster and a real S3-compatible server
# (s3s-fs) on loopback, then runs fmt, clippy (-D warnings) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

tools_dir="${KAIYUAN_TOOLS_DIR:-$HOME/.cache/kaiyuan/tools}"
export KAIYUAN_TEST_PYTHON="$HOME/.cache/kaiyuan/py/bin/python"
export KAIYUAN_TEST_PYTHON_HF0="$HOME/.cache/kaiyuan/py-hf0/bin/python"
export KAIYUAN_TEST_PYTHON_HF1="$HOME/.cache/kaiyuan/py-hf1/bin/python"
export KAIYUAN_TEST_WHEELS="${KAIYUAN_TEST_WHEELS:-$HOME/.cache/kaiyuan/wheels}"
# Reuse one build directory outside the clone: CI clones afresh each time.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kaiyuan/target}"
mkdir -p "$CARGO_TARGET_DIR"

work=$(mktemp -d /tmp/kaiyuan-test.XXXXXX)
chmod 755 "$work"
pg_bin=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -n1)")
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
  [[ -n "${s3_pid:-}" ]] && kill "$s3_pid" 2>/dev/null || true
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pg" && [[ ${#as_pg[@]} -gt 0 ]] && chown postgres: "$work/pg"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U kaiyuan -A trust -E UTF8 --locale=C >/dev/null
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories='' -c max_connections=300 -c fsync=off" >/dev/null
export DATABASE_URL="postgres://kaiyuan@127.0.0.1:$pg_port/postgres"

s3_port=$(free_port)
mkdir -p "$work/s3/kaiyuan-test"
export AWS_ACCESS_KEY_ID=kaiyuan-test AWS_SECRET_ACCESS_KEY=kaiyuan-test-secret AWS_REGION=us-east-1
"$tools_dir/bin/s3s-fs" --host 127.0.0.1 --port "$s3_port" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" >"$work/s3.log" 2>&1 &
s3_pid=$!
export KAIYUAN_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port" KAIYUAN_TEST_S3_BUCKET=kaiyuan-test
for _ in $(seq 50); do
  (echo >"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
  sleep 0.1
done

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "docker-compose config: checking that docker-compose.yml is valid (with and without --profile gpu)"
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml --profile gpu config -q

# Fuzz every scanner target briefly when cargo-fuzz is installed (it needs nightly features,
# which RUSTC_BOOTSTRAP enables on this stable toolchain).
export PATH="$PATH:$tools_dir/bin"
if cargo fuzz --version >/dev/null 2>&1; then
  seconds="${KAIYUAN_FUZZ_SECONDS:-10}"
  fuzz_target="${KAIYUAN_FUZZ_TARGET_DIR:-$HOME/.cache/kaiyuan/fuzz-target}"
  (
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build --target-dir "$fuzz_target" >/dev/null
    for target in $(cargo fuzz list); do
      cargo fuzz run --target-dir "$fuzz_target" "$target" -- -max_total_time="$seconds" -rss_limit_mb=1024 >"$work/fuzz-$target.log" 2>&1 \
        || { echo "fuzz target $target failed:"; tail -n 40 "$work/fuzz-$target.log"; exit 1; }
      echo "fuzz $target: $(grep -E '^Done' "$work/fuzz-$target.log")"
    done
  )
else
  echo "cargo-fuzz is not installed: fuzz targets skipped (cargo install cargo-fuzz)"
fi

RUST_BACKTRACE=0 cargo nextest run --workspace --no-fail-fast "$@"
