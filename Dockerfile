# syntax=docker/dockerfile:1
# maruta: one static binary on a minimal base.
#   docker build -t maruta --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse --short HEAD) .     (or: make image)
#   docker run -p 24224:24224 -p 24224:24224/udp -p 24220:24220 -v maruta-data:/var/lib/maruta maruta
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=none
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/maruta ./cmd/maruta \
 && mkdir -p /out/data

# distroless/static: CA certificates, tzdata, /etc/passwd with "nonroot" (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/maruta /usr/local/bin/maruta
COPY --from=build --chown=65532:65532 /out/data /var/lib/maruta
USER 65532:65532
# Set MARUTA_CONFIG=/etc/maruta/maruta.yaml (and mount it) to run your config:
# it is the default -c of `run` and of the `healthcheck` below.
# Listen on all interfaces inside the container; data (buffers, dead letters,
# schemas, local lake) in the volume so it survives container restarts.
ENV MARUTA_DATA_DIR=/var/lib/maruta \
    MARUTA_LISTEN=0.0.0.0:24224 \
    MARUTA_HTTP_LISTEN=0.0.0.0:24220
VOLUME ["/var/lib/maruta"]
EXPOSE 24224/tcp 24224/udp 24220/tcp
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/maruta", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/maruta"]
CMD ["run"]
