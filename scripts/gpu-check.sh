#!/usr/bin/env bash
# Verifies the ONNX conformance corpus on an NVIDIA GPU with `kaiyuan verify --ep auto` (CUDA
# when it initialises, else the CPU) and prints how many passed on CUDA, how many fell back, and
# the CUDA speed-up over the CPU for the largest (`light`) models. Finishes in well under 5 min.
#
# The GPU machine may have no network and no Rust toolchain. It needs, carried there:
#   - the kaiyuan binary: $KAIYUAN_BIN (default target/release/kaiyuan, else target/debug/kaiyuan;
#     built here with cargo when cargo exists and neither does);
#   - ONNX Runtime's CUDA build: libonnxruntime.so.1.31.1, libonnxruntime_providers_cuda.so and
#     libonnxruntime_providers_shared.so from the onnxruntime-gpu==1.31.1 wheel's
#     onnxruntime/capi/ (`pip download --no-deps onnxruntime-gpu==1.31.1`), in $KAIYUAN_ORT_GPU_DIR
#     (default ~/.cache/kaiyuan/onnxruntime/gpu, where scripts/install-deps.sh puts them);
#   - CUDA 13 and cuDNN 9 libraries (libcudart.so.13, libcublas.so.13, libcudnn.so.9...), found on
#     the loader path or in the nvidia-* Python packages of $PYTHON (default python3);
#   - Python with numpy and onnx (for the corpus and the reference check).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
ort_dir=${KAIYUAN_ORT_GPU_DIR:-$HOME/.cache/kaiyuan/onnxruntime/gpu}
fail() { echo "gpu-check: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || fail "no NVIDIA GPU visible (nvidia-smi -L failed)"
bin=${KAIYUAN_BIN:-}
if [[ -z "$bin" ]]; then
  for candidate in target/release/kaiyuan target/debug/kaiyuan; do
    [[ -x "$candidate" ]] && { bin=$candidate; break; }
  done
fi
if [[ -z "$bin" ]]; then
  command -v cargo >/dev/null || fail "no kaiyuan binary and no cargo: carry target/release/kaiyuan (or set KAIYUAN_BIN)"
  cargo build --release -p kaiyuan-hub --bin kaiyuan
  bin=target/release/kaiyuan
fi
for lib in libonnxruntime.so.1.31.1 libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
  [[ -f "$ort_dir/$lib" ]] || fail "missing $ort_dir/$lib: carry it from the onnxruntime-gpu==1.31.1 wheel (onnxruntime/capi/)"
done
ln -sf libonnxruntime.so.1.31.1 "$ort_dir/libonnxruntime.so"

# CUDA and cuDNN from the nvidia-* wheels, when the system loader does not have them.
nvidia_libs=$("$python" - <<'PY' 2>/dev/null || true
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "nvidia", "**", "lib"), recursive=True)})))
PY
)
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for lib in libcudart.so.13 libcublas.so.13 libcudnn.so.9; do
  found=false
  for d in ${LD_LIBRARY_PATH//:/ }; do [[ -e "$d/$lib" ]] && found=true; done
  $found || ldconfig -p | grep -q "$lib" || fail "$lib not found: install CUDA 13 / cuDNN 9 (the nvidia-*-cu13 Python packages do)"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" tests/python/onnx_conformance.py prepare "$work/corpus"
rm -rf "$work/corpus/perturbed"
export ORT_DYLIB_PATH="$ort_dir/libonnxruntime.so"
start=$(date +%s%N)
"$bin" verify --json --ep auto --runs 20 "$work/corpus" > "$work/cuda.jsonl" || true
cuda_secs=$(( ($(date +%s%N) - start) / 1000000 ))
"$bin" verify --json --ep cpu --runs 20 "$work/corpus/light" > "$work/cpu-light.jsonl" || true
"$python" - "$work/cuda.jsonl" "$work/cpu-light.jsonl" "$cuda_secs" <<'PY'
import json, sys
cuda = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
cpu = {r["path"]: r for r in (json.loads(l) for l in open(sys.argv[2]) if l.startswith("{"))}
on_cuda = [r for r in cuda if r.get("provider") == "cuda"]
fell_back = [r for r in cuda if r.get("provider") == "cpu"]
print(f"device: {next((r['device'] for r in on_cuda), 'none')}; ONNX Runtime {next((r['onnxruntime_version'] for r in cuda if r.get('onnxruntime_version')), '?')}")
print(f"models: {len(cuda)} in {float(sys.argv[3]) / 1000:.1f} s; ran on CUDA: {len(on_cuda)} ({sum(r['status'] == 'passed' for r in on_cuda)} passed); "
      f"fell back to the CPU: {len(fell_back)} ({sum(r['status'] == 'passed' for r in fell_back)} passed); "
      f"passed overall: {sum(r['status'] == 'passed' for r in cuda)}")
for r in on_cuda:
    if r["status"] != "passed":
        print(f"  failed on CUDA: {r['path']}: {(r.get('reason') or '')[:200]}")
print("largest models (light), p50 latency: cpu vs cuda")
for r in sorted(on_cuda, key=lambda r: -((cpu.get(r["path"].split("/", 1)[-1]) or {}).get("timings", {}).get("p50_ms") or 0)):
    c = cpu.get(r["path"].split("/", 1)[1]) if "/" in r["path"] else None
    if not r["path"].startswith("light/") or not c or not c["timings"].get("p50_ms"):
        continue
    g = r["timings"]["p50_ms"]
    print(f"  {r['path']:<40} cpu {c['timings']['p50_ms']:8.3f} ms  cuda {g:8.3f} ms  speed-up {c['timings']['p50_ms'] / g:5.2f}x  ({r['status']} on CUDA)")
PY
