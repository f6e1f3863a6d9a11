#!/usr/bin/env bash
# Installs what is missing and runs the hub with its embedded defaults: a PostgreSQL cluster and
# a local-filesystem object store under the data directory (./.kaiyuan unless --data-dir), on
# http://127.0.0.1:8080 unless --listen. Extra arguments go to `kaiyuan serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# glibc's default of up to eight malloc arenas per core keeps what each thread freed: a mirror
# serving a model in four files peaked at 195 MiB with it, at 129 MiB with two, at the same
# speed (docs/BENCHMARKS.md).
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec cargo run --quiet --release -p kaiyuan-hub --bin kaiyuan -- serve "$@"
