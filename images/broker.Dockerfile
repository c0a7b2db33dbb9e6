# syntax=docker/dockerfile:1
# The Strand broker image: the `strand` binary (broker, admin CLI, playground).
# Build from the repository root:
#   docker build -f images/broker.Dockerfile -t strand:dev .

# The workspace's rust-version; override with --build-arg RUST_VERSION=….
ARG RUST_VERSION=1.90
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The target directory is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strand --bin strand \
 && cp target/release/strand /usr/local/bin/strand

# glibc, libgcc and libssl (linked by `strand bench`'s librdkafka; the broker speaks TLS with
# rustls), nothing else; runs as uid/gid 65532, the user the operator's pod
# security context expects.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/strand /usr/local/bin/strand
USER 65532:65532
# Kafka protocol, gRPC (Raft and admin), HTTP (metrics and health).
EXPOSE 9092 9093 9644
VOLUME ["/var/lib/strand"]
ENTRYPOINT ["/usr/local/bin/strand"]
CMD ["broker"]
