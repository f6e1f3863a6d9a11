#!/usr/bin/env bash
# Verification benchmark: `kaiyuan verify` (the workers' code path: one limited child process
# per run, ONNX Runtime loaded there once, each model isolated) on the ONNX conformance corpus,
# against a plain Python script with onnxruntime's InferenceSession doing the same work (session,
# three runs, comparison) in the same run. Prints totals, the slowest models and the ratio.
#   scripts/bench-verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p kaiyuan-hub --bin kaiyuan
bin="$target/release/kaiyuan"
python="${KAIYUAN_TEST_PYTHON:-$HOME/.cache/kaiyuan/py/bin/python}"
work=$(mktemp -d /var/tmp/kaiyuan-verifybench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$python" tests/python/onnx_conformance.py prepare "$work/corpus"
rm -rf "$work/corpus/perturbed"
# Warm the page cache for both, then measure each twice and keep the faster run.
"$bin" verify --runs 1 "$work/corpus" >/dev/null || true
for round in 1 2; do
  start=$(date +%s%N)
  "$bin" verify --json --runs 1 "$work/corpus" > "$work/kaiyuan-$round.jsonl" || true
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$work/kaiyuan-$round.ms"
  "$python" tests/python/bench_verify_reference.py "$work/corpus" > "$work/python-$round.json"
done
"$python" - "$work" <<'PY'
import json, sys, os
work = sys.argv[1]
best = None
for r in (1, 2):
    wall = int(open(f"{work}/kaiyuan-{r}.ms").read())
    ours = {}
    for line in open(f"{work}/kaiyuan-{r}.jsonl"):
        rep = json.loads(line)
        ours[rep["path"].rsplit("/model.onnx", 1)[0]] = rep
    py = json.load(open(f"{work}/python-{r}.json"))
    total_py = sum(py.values())
    if best is None or wall < best[0]:
        best = (wall, ours, py, total_py)
wall, ours, py, total_py = best
passed = sum(r["status"] == "passed" for r in ours.values())
print(f"models: {len(ours)} ({passed} passed), ONNX Runtime {next(iter(ours.values()))['onnxruntime_version']}, CPU")
print(f"kaiyuan verify (isolated child, whole command): {wall / 1000:.2f} s")
print(f"python InferenceSession (after imports):        {total_py / 1000:.2f} s")
print(f"ratio kaiyuan / python: {wall / total_py:.2f}x (target <= 1.2x)")
print("slowest models (kaiyuan in-child total_ms vs python ms):")
for case in sorted(py, key=lambda c: -py[c])[:8]:
    ms = ours[case]["timings"]["total_ms"]
    print(f"  {case:<55} {ms:9.1f} {py[case]:9.1f}  {ms / py[case]:5.2f}x")
PY
