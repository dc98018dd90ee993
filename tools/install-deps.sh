#!/usr/bin/env bash
# Installs every build and test dependency of PlexTV from Debian 12 packages.
# Idempotent: when everything is present it prints nothing and exits 0.
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config git clang llvm clang-format
  liburing-dev node-llhttp libmimalloc-dev liblmdb-dev lmdb-utils
  libjansson-dev libinih-dev libcurl4-gnutls-dev libxml2-dev zlib1g-dev uuid-dev
  libavformat-dev libavcodec-dev libavutil-dev
  libbpf-dev bpftool libelf-dev
  libcmocka-dev libclang-rt-14-dev
  # tests and peers
  python3 curl ffmpeg prometheus wrk nginx-light iproute2 procps
  hdhomerun-config libhdhomerun-dev gupnp-tools libcap2-bin xmltv-util
  libnginx-mod-rtmp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly libxml2-utils jq valgrind gnuplot-nox vlc-bin vlc-plugin-base
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# prometheus' postinst starts a service; it is not wanted on build machines.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Services pulled in by test tools must not keep running or hold ports.
for svc in nginx prometheus prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
exit 0
