# roomtape: one static binary. Build: docker build -t roomtape .
# Run a worker with embedded NATS:  docker run -v roomtape-data:/data -p 9090:9090 -p 50000:50000/udp roomtape
# Run the signalling server:        docker run -p 8787:8787 roomtape signal
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# scripts/docker-build runs these same commands in CI (no Docker engine there).
RUN ./scripts/docker-build /out/roomtape

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/roomtape /usr/local/bin/roomtape
COPY config.yaml /etc/roomtape/config.yaml
# Container defaults: listen on all interfaces, data under the /data volume, one UDP port for
# every WebRTC connection (publish it, and set ROOMTAPE_BOT_NETWORK_NAT_1TO1_IPS via the config
# file when the host is behind 1:1 NAT).
ENV ROOMTAPE_SIGNAL_LISTEN=0.0.0.0:8787 \
    ROOMTAPE_RECORDER_OUT_DIR=/data/recordings \
    ROOMTAPE_NATS_STORE_DIR=/data/nats-store \
    ROOMTAPE_WORKER_METRICS_LISTEN=0.0.0.0:9090 \
    ROOMTAPE_BOT_NETWORK_UDP_MUX_PORT=50000 \
    ROOMTAPE_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8787/tcp 9090/tcp 50000/udp
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["/usr/local/bin/roomtape", "healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/roomtape", "--config", "/etc/roomtape/config.yaml"]
CMD ["worker"]
