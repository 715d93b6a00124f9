# Builds the operator image: the controller, the in-pod supervisor it injects into reviewer pods,
# and the kubectl plugin, on a distroless non-root base; built without the embedded dev cluster.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile image --locked --no-default-features --bin review-operator --bin kubectl-review

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/image/review-operator /review-operator
COPY --from=build /src/target/image/kubectl-review /kubectl-review
# Numeric, so that a kubelet can verify runAsNonRoot (distroless nonroot is 65532).
USER 65532:65532
ENTRYPOINT ["/review-operator"]
