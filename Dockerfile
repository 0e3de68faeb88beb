# podwarden: built with the locked dependencies in the official Rust image, run as a
# non-root user in a minimal image with no shell.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin podwarden \
    && cp target/release/podwarden /podwarden

FROM gcr.io/distroless/cc-debian12:nonroot
# checkov:skip=CKV_DOCKER_2:Kubernetes probes /healthz and /readyz; the image has no shell or client to run a HEALTHCHECK with
COPY --from=build /podwarden /usr/local/bin/podwarden
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/podwarden", "run"]
