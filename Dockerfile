# The ironlb image the manifests in deploy/ run (`docker build -t ironlb:latest .`).
# One static-enough binary on a small Debian base; the speaker needs no tools from the image.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ironlb

FROM debian:bookworm-slim
COPY --from=build /src/target/release/ironlb /usr/local/bin/ironlb
# No USER: the controller's manifest runs it as 65534; the speaker runs as root with every
# capability dropped but NET_RAW, NET_ADMIN and NET_BIND_SERVICE (raw ARP/NDP sockets, TCP
# MD5, port 179), which a non-root process would not hold.
ENTRYPOINT ["/usr/local/bin/ironlb"]
