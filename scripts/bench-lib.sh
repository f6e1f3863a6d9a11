# Helpers shared by the benchmark scripts (sourced, not run).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
# The release hub binary and the test venv's Python (installs what is missing first).
bench_setup() {
  scripts/install-deps.sh --test
  target="${CARGO_TARGET_DIR:-target}"
  cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
  bin="$target/release/kaiyuan"
  py="$HOME/.cache/kaiyuan/py/bin/python"
}
