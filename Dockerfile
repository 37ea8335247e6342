# syntax=docker/dockerfile:1
#
# Torii container image: one static binary on distroless, running as non-root.
#
#   docker buildx build --build-arg VERSION=0.1.0 -t ghcr.io/torii-dev/torii:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 ...
#
# The builder runs on the build host's platform and cross-compiles (no
# emulation); CGO is off, so the binary needs no libc and the same image
# works on any node. Pin the base images by digest for reproducible releases.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/torii ./cmd/torii

# static-debian12: CA certificates, tzdata and /etc/passwd with the nonroot
# user, nothing else (no shell, no package manager).
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="torii" \
      org.opencontainers.image.description="Kubernetes Ingress controller with its own data plane" \
      org.opencontainers.image.source="https://github.com/torii-dev/torii"
COPY --from=build /out/torii /torii
# distroless "nonroot"; deploy/torii.yaml runs the pod as the same UID.
USER 65532:65532
# http, https, admin (health, metrics, /debug/routes: keep it internal).
EXPOSE 8080 8443 10254
ENTRYPOINT ["/torii"]
