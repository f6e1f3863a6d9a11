# syntax=docker/dockerfile:1
# The `kaiyuan` binary with ONNX Runtime for sample-inference verification.
#   docker build -t kaiyuan .                                  # CPU, on debian:bookworm-slim
#   docker build -t kaiyuan:gpu --build-arg ORT_FLAVOUR=gpu .  # CUDA, on NVIDIA's CUDA runtime
# The GPU flavour is x86_64 only (onnxruntime-gpu has no aarch64 wheel).
# Needs BuildKit (the default builder of Docker Engine 23+ and `docker compose`; with the Python
# docker-compose 1.x set DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1). The image expects an
# external PostgreSQL in DATABASE_URL (it has no PostgreSQL server for the embedded default) and
# an object store in KAIYUAN_STORE_URL (else objects go to /var/lib/kaiyuan/objects, the data
# directory); see docker-compose.yml.

# cpu: the `onnxruntime` wheel's library on Debian. gpu: the `onnxruntime-gpu` wheel's CUDA build,
# which for 1.31.1 is built against CUDA 13 and cuDNN 9; NVIDIA's CUDA runtime image provides
# those (cudart, cuBLAS, cuFFT, cuRAND, NVRTC, cuDNN), so no nvidia-* pip packages are needed. The
# host needs an NVIDIA driver for CUDA 13 (580 or newer) and the NVIDIA Container Toolkit.
ARG ORT_FLAVOUR=cpu
ARG GPU_BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# 1. The binary. The registry and target folder are BuildKit cache mounts, so a rebuild after a
#    source change recompiles only the workspace's own crates.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY services services
COPY tests tests
COPY migrations migrations
COPY web web
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kaiyuan-hub --bin kaiyuan \
    && cp target/release/kaiyuan /usr/local/bin/kaiyuan

# 2. ONNX Runtime's shared library, fetched from PyPI by the same script scripts/install-deps.sh
#    runs (scripts/run.sh, the README's run command, calls that): /opt/onnxruntime/{cpu,gpu}.
FROM python:3.12-slim-bookworm AS onnxruntime
ARG ORT_FLAVOUR
COPY scripts/install-onnxruntime.sh /usr/local/bin/install-onnxruntime.sh
RUN KAIYUAN_ORT_DIR=/opt/onnxruntime PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    install-onnxruntime.sh "$ORT_FLAVOUR"

# 3. The runtime: debian:bookworm-slim, or NVIDIA's CUDA runtime image for the GPU flavour.
FROM debian:bookworm-slim AS runtime-cpu
FROM ${GPU_BASE} AS runtime-gpu

FROM runtime-${ORT_FLAVOUR}
ARG ORT_FLAVOUR
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=onnxruntime /opt/onnxruntime/${ORT_FLAVOUR}/ /opt/onnxruntime/
COPY --from=build /usr/local/bin/kaiyuan /usr/local/bin/kaiyuan
RUN groupadd --gid 10001 kaiyuan \
    && useradd --uid 10001 --gid kaiyuan --no-create-home --home-dir /var/lib/kaiyuan --shell /usr/sbin/nologin kaiyuan \
    && mkdir -p /var/lib/kaiyuan \
    && chown kaiyuan:kaiyuan /var/lib/kaiyuan
# Two malloc arenas, as scripts/run.sh sets (glibc's default keeps far more memory: README).
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    MALLOC_ARENA_MAX=2 \
    KAIYUAN_LISTEN=0.0.0.0:8080 \
    KAIYUAN_DATA_DIR=/var/lib/kaiyuan
USER kaiyuan
WORKDIR /var/lib/kaiyuan
EXPOSE 8080
ENTRYPOINT ["kaiyuan"]
CMD ["serve"]
