# ironlb's images. One binary; it is the daemon it is started as.
#
#   docker build -t ironlb:latest .                          # deploy/'s manifests run this
#   docker build --target controller -t ironlb-controller .  # MetalLB's controller image
#   docker build --target speaker -t ironlb-speaker .        # MetalLB's speaker image
#
# MetalLB's Deployment and DaemonSet give no command, only args, so its two images must start
# /controller and /speaker themselves: the two MetalLB targets differ only in ENTRYPOINT and
# in the default user. Each image holds the binary, its links, and the C runtime it links
# against (distroless/cc: glibc, libgcc, CA certificates, no shell).
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ironlb \
 && mkdir /out \
 && cp target/release/ironlb /out/ironlb \
 && ln -s ironlb /out/controller \
 && ln -s ironlb /out/speaker

FROM gcr.io/distroless/cc-debian12 AS base
# A directory copy keeps the links as links.
COPY --from=build /out/ /

# MetalLB's controller securityContext runs it as 65534 with every capability dropped and a
# read-only root filesystem; it needs nothing more (its keys live in the API server).
FROM base AS controller
USER 65534:65534
ENTRYPOINT ["/controller"]

# The speaker runs as root so that the one capability MetalLB's securityContext adds,
# NET_RAW (ARP and NDP), is effective. Passive BGP peers also need NET_BIND_SERVICE (port
# 179); without it the speaker says so.
FROM base AS speaker
ENTRYPOINT ["/speaker"]

# The default: deploy/'s manifests pass the subcommand (`args: [controller]`).
FROM base AS ironlb
ENTRYPOINT ["/ironlb"]
