#!/usr/bin/env bash
# Regenerates media/demo.mp4, the clip behind `mediamesh serve --demo`: 10 s of a
# moving test pattern with a tone, H.264 (2 s GOP, so segments cut cleanly) and AAC.
# The result is committed; the binary embeds it, so running the demo needs no ffmpeg.
set -euo pipefail
out="$(dirname "$0")/../media/demo.mp4"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:beep_factor=4" \
  -t 10 -map 0:v -map 1:a \
  -c:v libx264 -preset medium -profile:v high -pix_fmt yuv420p -b:v 350k -maxrate 450k -bufsize 700k \
  -g 60 -keyint_min 60 -sc_threshold 0 -bf 2 \
  -c:a aac -b:a 64k -ac 2 \
  -movflags +faststart "$out"
ls -l "$out"
