# syntax=docker/dockerfile:1
# One image with both binaries (`api` and `consumer`); pick one with the command.

# The operators' console: static assets built on the TypeScript client.
FROM node:20-bookworm-slim AS console
WORKDIR /src
COPY clients/typescript/package.json clients/typescript/package-lock.json clients/typescript/
COPY console/package.json console/package-lock.json console/
RUN cd clients/typescript && npm ci --no-audit --no-fund && cd ../../console && npm ci --no-audit --no-fund
COPY clients/typescript clients/typescript
COPY console console
RUN cd clients/typescript && npm run build && cd ../../console && npm run build

FROM rust:1.90-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
# Dependency layer: build the dependency graph against stub sources, so source edits do
# not rebuild librdkafka and the rest.
COPY Cargo.toml Cargo.lock ./
COPY common/Cargo.toml common/
COPY api/Cargo.toml api/
COPY consumer/Cargo.toml consumer/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
RUN for c in common api consumer tests bench; do mkdir -p $c/src && echo "" > $c/src/lib.rs; done \
 && echo "fn main() {}" > api/src/main.rs && echo "fn main() {}" > consumer/src/main.rs && echo "fn main() {}" > bench/src/main.rs \
 && mkdir -p tests/tests/it && echo "" > tests/tests/it/main.rs && echo "" > tests/tests/export_memory.rs \
 && cargo build --release --locked -p registrar-api -p registrar-consumer \
 && rm -rf common/src api/src consumer/src bench/src
COPY . .
RUN touch common/src/lib.rs api/src/lib.rs api/src/main.rs consumer/src/lib.rs consumer/src/main.rs \
 && cargo build --release --locked --bin api --bin consumer

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home registrar
COPY --from=build /src/target/release/api /src/target/release/consumer /usr/local/bin/
COPY --from=console /src/console/dist /usr/share/registrar/console
USER 10001
# glibc: keep freed argon2 blocks (19 MiB each) from piling up in per-thread arenas.
ENV LOG_FORMAT=json MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=1048576 \
    CONSOLE_DIR=/usr/share/registrar/console
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=4s --retries=3 CMD ["api", "healthcheck"]
CMD ["api", "serve"]
