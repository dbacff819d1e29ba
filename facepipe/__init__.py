"""facepipe: turn video into a per-person bank of face embeddings and appearance counts."""

__version__ = "0.1.0"
