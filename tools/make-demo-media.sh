#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Generates the demo channels share/demo/*.ts: 10 s loops of a synthetic test pattern with a
# tone, H.264 constrained baseline + AAC-LC in MPEG-TS, 640x360 at 25 fps, one keyframe per
# second (so a viewer or a loop restart is never more than 1 s from a decodable picture).
# The outputs are committed; rerun this only to change them. Usage: make-demo-media.sh [OUTDIR]
set -euo pipefail

out=${1:-"$(cd "$(dirname "$0")/.." && pwd)/share/demo"}
mkdir -p "$out"
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

# name|lavfi video source|tone frequency (Hz)|label
channels=(
  "demo-1|testsrc2=size=640x360:rate=25|440|PlexTV demo 1"
  "demo-2|smptebars=size=640x360:rate=25|660|PlexTV demo 2"
  "demo-3|mandelbrot=size=640x360:rate=25|880|PlexTV demo 3"
)

have_drawtext=0
# Not `ffmpeg | grep -q`: with pipefail, grep closing the pipe early fails the whole test.
filters=$(ffmpeg -hide_banner -filters 2>/dev/null || true)
if [[ $filters == *" drawtext "* ]] && [ -r "$font" ]; then
  have_drawtext=1
fi

for ch in "${channels[@]}"; do
  IFS='|' read -r name src freq label <<<"$ch"
  vf=format=yuv420p
  if [ $have_drawtext = 1 ]; then
    # Channel label plus a running clock, so a viewer can see the loop and the channel.
    vf="$vf,drawtext=fontfile=$font:text='$label':x=20:y=20:fontsize=32:fontcolor=white:box=1:boxcolor=black@0.6"
    vf="$vf,drawtext=fontfile=$font:text='%{pts\\:hms}':x=20:y=h-50:fontsize=28:fontcolor=yellow:box=1:boxcolor=black@0.6"
  fi
  # -bitexact and fixed metadata keep the files reproducible from one run to the next.
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "$src" -f lavfi -i "sine=frequency=$freq:sample_rate=48000" \
    -t 10 -map 0:v -map 1:a -vf "$vf" \
    -c:v libx264 -profile:v baseline -level 3.0 -preset veryfast -tune zerolatency \
    -b:v 450k -maxrate 500k -bufsize 500k -g 25 -keyint_min 25 -sc_threshold 0 \
    -x264-params "threads=1:sliced-threads=0" \
    -c:a aac -b:a 96k -ac 2 \
    -metadata service_name="$label" -metadata service_provider=PlexTV \
    -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
    -mpegts_service_id 1 -muxrate 0 -f mpegts "$out/$name.ts"
  echo "$out/$name.ts: $(stat -c %s "$out/$name.ts") bytes"
done
