# The Weft image: `wasm-run` (runner Jobs and serving pods) and `weft-operator`, on a distroless
# base, running as an unprivileged user. Build it where a container engine exists:
#   docker build -t weft:dev .
# CI has no engine: it lints this file (hadolint) and builds the binaries it packages.

FROM rust:1.97.0-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wasm-run --features s3,kube,postgres,onnx,cuda -p weft-operator \
    && install -D -m 0755 target/release/wasm-run /out/wasm-run \
    && install -D -m 0755 target/release/weft-operator /out/weft-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/wasm-run /out/weft-operator /usr/local/bin/
# Weft's home (metadata, artifacts, compiled-component cache); a volume in the pods.
ENV WEFT_HOME=/var/lib/weft
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/wasm-run"]
