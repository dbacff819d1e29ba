#!/usr/bin/env bash
# The first command: set up, then run facepipe's main job on a real video with the
# embedded default (a private valkey-server and local Celery workers; nothing to install
# or start by hand). Pass your own video and flags to override: scripts/demo.sh my.mp4 --frame-step 5
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then
  exec .venv/bin/facepipe run "$@"
fi
video=../shared/data/videos/hamilton_short.mp4
if [ ! -f "$video" ]; then
  video=$(.venv/bin/python -m facepipe.media.samples)
  echo "(../shared/data not found: using a video built from insightface's sample photo: $video)"
fi
exec .venv/bin/facepipe run "$video" --frame-step 3 --out facepipe-runs/demo --save-images
