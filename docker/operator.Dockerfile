# syntax=docker/dockerfile:1
# The operator image: the `archlab` binary on the flex (pure Rust, CPU) backend, no libtorch.
# Its own `train` command also makes it the CPU trainer image (spec.trainer.device: cpu).
#   docker build -f docker/operator.Dockerfile -t ghcr.io/archlab/archlab-operator:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/build-release.sh

# glibc and libgcc, nothing else: no shell, no package manager; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/archlab /usr/local/bin/archlab
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["archlab"]
CMD ["operator"]
