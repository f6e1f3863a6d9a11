# Helpers shared by the benchmark scripts (sourced, not run).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
# The release hub binary (or KAIYUAN_BIN, to compare two builds in one session) and the test
# venv's Python (installs what is missing first).
bench_setup() {
  scripts/install-deps.sh --test
  target="${CARGO_TARGET_DIR:-target}"
  [ -n "${KAIYUAN_BIN:-}" ] || cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
  bin="${KAIYUAN_BIN:-$target/release/kaiyuan}"
  py="$HOME/.cache/kaiyuan/py/bin/python"
}

# A scratch directory $work under /var/tmp, removed with every hub started (`pids`) stopped
# when the script exits.
bench_workdir() {
  work=$(mktemp -d "/var/tmp/kaiyuan-$1.XXXXXX")
  chmod 755 "$work"
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

# Starts the hub with its embedded defaults in $work/NAME on PORT (no collector, no workers,
# EXTRA appended to its configuration) and waits until it is ready; its pid joins `pids`.
start_hub() { # name port extra-config
  # The embedded defaults: a database or store configured in the environment is not used.
  unset DATABASE_URL KAIYUAN_DATABASE_URL KAIYUAN_STORE_URL
  local pg_port; pg_port=$(free_port)
  printf '[embedded_postgres]\nport = %s\n[gc]\ninterval_secs = 0\n%s\n' "$pg_port" "$3" >"$work/$1.toml"
  # The allocator setting scripts/run.sh and the container use.
  MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" KAIYUAN_WORKERS=0 RUST_LOG=warn "$bin" --config "$work/$1.toml" serve --data-dir "$work/$1" --listen "127.0.0.1:$2" &
  pids+=($!)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && break; sleep 0.1; done
}

# One hub in $work/hub: sets hub (its URL), hub_pid and token (an admin's).
start_bench_hub() {
  local port; port=$(free_port)
  start_hub hub "$port" ""
  hub_pid=${pids[-1]}
  token=$(RUST_LOG=warn "$bin" --config "$work/hub.toml" admin create-user bench --admin --data-dir "$work/hub" | tail -1)
  hub="http://127.0.0.1:$port"
}
