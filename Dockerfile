# syntax=docker/dockerfile:1
# Vigil's container image: one static binary, built from the committed BPF
# objects (no clang), on an empty base. Build with `make image`; run it as
# deploy/kubernetes/daemonset.yaml does (docs/operating.md).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git: the version, commit and commit date come in
# as build arguments (make image sets them from git).
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
RUN CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -ldflags "-s -w -X github.com/vigilsec/vigil/internal/version.Version=${VERSION} -X github.com/vigilsec/vigil/internal/version.Commit=${COMMIT} -X github.com/vigilsec/vigil/internal/version.Date=${DATE}" -o /out/vigil ./cmd/vigil

FROM scratch
# CA certificates for the TLS outputs (webhook, Elasticsearch, NATS).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/vigil /usr/bin/vigil
# Root, with the capabilities the pod grants (the agent checks for uid 0);
# the root filesystem is read-only in the DaemonSet: state goes to volumes.
USER 0:0
ENTRYPOINT ["/usr/bin/vigil"]
CMD ["run"]
