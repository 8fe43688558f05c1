# syntax=docker/dockerfile:1
# Trainer images: `archlab` whose `train` command the operator runs in each trainer pod.
#   GPU (default target): the `tch` feature on CUDA libtorch from the torch==2.9.0 wheel
#     docker build -f docker/trainer.Dockerfile -t ghcr.io/archlab/archlab:0.1.0 .
#   CPU: the flex backend only, no libtorch
#     docker build -f docker/trainer.Dockerfile --target cpu -t ghcr.io/archlab/archlab:0.1.0-cpu .
# Trainer pods run as a non-root user with a read-only root filesystem (the operator sets it).

FROM rust:1.95-bookworm AS build-cpu
WORKDIR /src
COPY . .
RUN bash scripts/build-release.sh

FROM gcr.io/distroless/cc-debian12:nonroot AS cpu
COPY --from=build-cpu /src/target/release/archlab /usr/local/bin/archlab
USER 65532:65532
ENTRYPOINT ["archlab"]
CMD ["train", "--help"]

# libtorch exactly as burn-tch 0.22 expects it: torch 2.9.0's, from the wheel (CUDA 12.8
# libraries come with it as nvidia-* wheels).
FROM rust:1.95-bookworm AS build-cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv=3.11.* \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir torch==2.9.0
ENV PATH=/opt/torch/bin:$PATH LIBTORCH_USE_PYTORCH=1
WORKDIR /src
COPY . .
RUN bash scripts/build-release.sh --features tch

FROM debian:bookworm-slim AS cuda
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin archlab
COPY --from=build-cuda /opt/torch /opt/torch
COPY --from=build-cuda /src/target/release/archlab /usr/local/bin/archlab
# libtorch and the CUDA libraries of the wheels; the driver comes from the node.
ENV LD_LIBRARY_PATH=/opt/torch/lib/python3.11/site-packages/torch/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cudnn/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cuda_runtime/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib:/opt/torch/lib/python3.11/site-packages/nvidia/nccl/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cusparse/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cufft/lib:/opt/torch/lib/python3.11/site-packages/nvidia/curand/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cusolver/lib:/opt/torch/lib/python3.11/site-packages/nvidia/nvjitlink/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cusparselt/lib:/opt/torch/lib/python3.11/site-packages/nvidia/nvtx/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cuda_cupti/lib:/opt/torch/lib/python3.11/site-packages/nvidia/cufile/lib:/opt/torch/lib/python3.11/site-packages/nvidia/nvshmem/lib \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
ENTRYPOINT ["archlab"]
CMD ["train", "--help"]
