"""Build a short demo video of six real faces from insightface's bundled t1.jpg; print its path."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.conftest import t1_frames, write_video

if __name__ == "__main__":
    path = Path(tempfile.gettempdir()) / "facepipe-demo-t1.mp4"
    if not path.exists():
        write_video(path, t1_frames(48))
    print(path)
