# syntax=docker/dockerfile:1
# The Strand operator image.
# Build from the repository root:
#   docker build -f images/operator.Dockerfile -t strand-operator:dev .

# The workspace's rust-version; override with --build-arg RUST_VERSION=….
ARG RUST_VERSION=1.90
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The target directory is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strand-operator --bin strand-operator \
 && cp target/release/strand-operator /usr/local/bin/strand-operator

# glibc and libgcc, nothing else; runs as uid/gid 65532, as the chart's Deployment expects.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/strand-operator /usr/local/bin/strand-operator
USER 65532:65532
# Metrics and health.
EXPOSE 9644
ENTRYPOINT ["/usr/local/bin/strand-operator"]
CMD ["run"]
