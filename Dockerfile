# syntax=docker/dockerfile:1
#
# The engine (`omni up`: conversation service, router, projector, presence, the HTTP gateway,
# /metrics) in one image.
# Built in two stages: a Rust toolchain compiles the `omni` binary, a slim Debian runs it.
# `docker compose up` (docker-compose.yml) runs it next to a NATS server with JetStream.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# The whole workspace: Cargo.lock pins every dependency (--locked), protobuf is compiled by
# protox in the build script, so no protoc is needed.
COPY . .
# Cache the registry and the target directory between builds (BuildKit); the binary is copied
# out of the cache mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin omni \
    && install -D -m 0755 target/release/omni /out/omni

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home omni \
    && mkdir -p /data \
    && chown omni:omni /data
COPY --from=builder /out/omni /usr/local/bin/omni
USER omni
WORKDIR /data
# The log lives under /data/log.
VOLUME ["/data"]
# Prometheus metrics at /metrics; the HTTP API (omni-gateway).
EXPOSE 9464 8080
# `omni up` stops cleanly on SIGINT (queued commands answered, the log closed); docker's
# default SIGTERM would be ignored by PID 1 until the kill.
STOPSIGNAL SIGINT
ENV RUST_LOG=info
ENTRYPOINT ["omni"]
CMD ["up", "--data", "/data", "--nats-url", "nats://nats:4222", "--metrics-addr", "0.0.0.0:9464", "--http", "0.0.0.0:8080"]
