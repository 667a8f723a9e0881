# syntax=docker/dockerfile:1
#
# The `silt` image: one binary, every role (`silt serve`, `silt meta`, `silt agent`).
#
# Two ways to fill it (BuildKit, the default builder since Docker 23, skips the
# stage that is not used):
#
#   from source (default):
#     docker build -t silt:dev .
#
#   from the binary CI already built and tested (so the image carries exactly that file):
#     cargo build --release --locked -p silt-cli --bin silt
#     docker build --build-arg SILT_BUILD=prebuilt -t silt:dev .
#   The binary is taken from target/release/silt (override with
#   --build-arg SILT_BINARY=path/inside/the/context). It is linked against the build
#   machine's glibc, so that glibc must not be newer than the runtime image's
#   (Debian bookworm: 2.36); pick RUNTIME_IMAGE to match otherwise.
#
# See docs/deploy.md for pushing the image and running it on Kubernetes.

# Pinned tags (checkov cannot see through the ARGs, hence the skip):
#checkov:skip=CKV_DOCKER_7:Base images are pinned by tag in the ARG defaults (rust:1.95-slim-bookworm, debian:bookworm-slim); CI may pass digests.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
# `source` or `prebuilt`: which stage provides /out/silt.
ARG SILT_BUILD=source

# ---- binary from source -------------------------------------------------------------
FROM ${RUST_IMAGE} AS binary-source
WORKDIR /src
# Only what cargo needs: the workspace manifests and every member crate. The rest of the
# context (docs, deploy, terraform, target/) never reaches this stage.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
COPY tests ./tests
COPY benches ./benches
# The cache mounts keep the registry and build artifacts between builds on one builder;
# target/ lives in a cache mount, so the binary is copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p silt-cli --bin silt \
 && install -D -m 0755 target/release/silt /out/silt

# ---- binary prebuilt by CI ----------------------------------------------------------
FROM scratch AS binary-prebuilt
ARG SILT_BINARY=target/release/silt
COPY --chmod=0755 ${SILT_BINARY} /out/silt

# ---- the chosen binary ---------------------------------------------------------------
FROM binary-${SILT_BUILD} AS binary

# ---- runtime -------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: TLS to S3 and to PostgreSQL. Nothing else is installed: no shell tools
# are needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=binary /out/silt /usr/local/bin/silt
# The cache directory the manifests mount an emptyDir (or local NVMe) on; it exists in
# the image so `docker run` without a volume works too.
RUN install -d -m 0750 -o 65532 -g 65532 /var/cache/silt
# Numeric UID/GID so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080 8081
#checkov:skip=CKV_DOCKER_2:Health is probed by Kubernetes (liveness /healthz, readiness /readyz); see the comment below.
# No HEALTHCHECK: on Kubernetes the kubelet runs liveness (/healthz) and readiness
# (/readyz) probes and ignores Docker's HEALTHCHECK, and a curl inside the image would
# need a shell and curl that the runtime image deliberately does not carry.
ENTRYPOINT ["/usr/local/bin/silt"]
CMD ["--help"]
