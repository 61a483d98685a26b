# syntax=docker/dockerfile:1
#
# Herald container image: a static binary on distroless, running as nonroot.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t herald .
#   docker run -p 8080:8080 -e HERALD_JWT_SECRET=... -e HERALD_API_KEY=... herald
#
# The server listens on 0.0.0.0:8080 (HERALD_ADDR below), which Herald only
# allows with authentication configured (HERALD_JWT_SECRET,
# HERALD_JWT_PUBLIC_KEY_FILE or HERALD_JWKS_URL) or HERALD_INSECURE_NO_AUTH=true.
# deploy/dockerfile_test.go checks this file against the Kubernetes manifests.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Dependencies first, so source edits do not invalidate the module download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/herald ./cmd/herald

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /herald
# nonroot is uid/gid 65532; stated here so runAsNonRoot can verify it.
USER 65532:65532
ENV HERALD_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/herald", "serve"]
