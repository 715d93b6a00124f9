# Builds the operator image: the controller, the in-pod supervisor it injects into reviewer pods,
# and the kubectl plugin, on a distroless non-root base; built without the embedded dev cluster.
# The binaries are statically linked (static-pie, no ELF interpreter), so that the copy the init
# container injects runs in any agent image: musl (Alpine), distroless-static or an older glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN target="$(rustc -vV | sed -n 's/^host: //p')" \
 && RUSTFLAGS="-C target-feature=+crt-static" cargo build --profile image --locked --no-default-features \
      --target "$target" --bin review-operator --bin kubectl-review \
 && mkdir -p /out && cp "target/$target/image/review-operator" "target/$target/image/kubectl-review" /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/review-operator /review-operator
COPY --from=build /out/kubectl-review /kubectl-review
# Numeric, so that a kubelet can verify runAsNonRoot (distroless nonroot is 65532).
USER 65532:65532
ENTRYPOINT ["/review-operator"]
