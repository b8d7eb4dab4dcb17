# imagegate serve as a container image, for those who build with docker
# (BuildKit). `make image` builds the same layout without docker and pushes
# it (host-runner/src/deploy/image.rs; a test checks that this file's
# command, user and paths match it). This Dockerfile itself is not built by
# the project's tests.
#
#   docker build -t registry.example/imagegate:v0.1.0 .
#
# The builder stage needs the internet (rust image, Debian packages, crates).
# It runs the Makefile's own targets: the module (wasm-opt included), the
# annotated module and the static binary, as `make image` builds them.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN make annotate static-binary \
    && cp target/x86_64-unknown-linux-musl/release/imagegate /imagegate \
    && cp annotated-policy.wasm /annotated-policy.wasm \
    && printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > /passwd \
    && printf 'nonroot:x:65532:\n' > /group

FROM scratch
COPY --from=build --chmod=0755 /imagegate /imagegate
COPY --from=build --chmod=0644 /annotated-policy.wasm /policy.wasm
COPY --from=build --chmod=0644 /passwd /etc/passwd
COPY --from=build --chmod=0644 /group /etc/group
COPY --from=build --chmod=0644 /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.title=imagegate \
      org.opencontainers.image.source=https://github.com/imagegate/imagegate \
      org.opencontainers.image.licenses=Apache-2.0
WORKDIR /
EXPOSE 8443
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/imagegate"]
CMD ["serve", "--policy", "/policy.wasm", "--settings-path", "/etc/imagegate/settings/settings.yaml", "--addr", "0.0.0.0:8443", "--disable-wasmtime-cache"]
