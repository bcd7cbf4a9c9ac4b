"""Streaming runtime: scores live camera snippets with a sliding window (no PyTorch needed)."""
