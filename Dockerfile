# syntax=docker/dockerfile:1
# PlexTV container: build on Debian 12, run on Debian 12 slim.
#   docker build -t plextv .
#   docker run -d --name plextv --network host -v plextv-config:/config \
#     --security-opt seccomp=contrib/seccomp-io_uring.json plextv
# Docker >= 25 blocks io_uring in its default seccomp profile: use the profile shipped in
# contrib/ (or seccomp=unconfined). Host networking lets Plex/Jellyfin discover the tuner.

FROM debian:bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config git clang llvm \
      liburing-dev node-llhttp libmimalloc-dev liblmdb-dev libjansson-dev libinih-dev \
      libcurl4-gnutls-dev libxml2-dev zlib1g-dev uuid-dev libavformat-dev libavcodec-dev \
      libavutil-dev libbpf-dev bpftool libelf-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DPTV_BUILD_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" --target plextv

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      liburing2 libmimalloc2.0 liblmdb0 libjansson4 libinih1 libcurl3-gnutls libxml2 zlib1g \
      libuuid1 libavformat59 libavcodec59 libavutil57 libbpf1 libelf1 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/plextv /usr/bin/plextv
COPY share/demo /usr/share/plextv/demo
ENV PLEXTV_DATA_DIR=/config \
    PLEXTV_DEMO_DIR=/usr/share/plextv/demo
VOLUME /config
EXPOSE 8080/tcp 1900/udp 65001/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["plextv", "healthcheck"]
ENTRYPOINT ["plextv"]
CMD ["serve"]
