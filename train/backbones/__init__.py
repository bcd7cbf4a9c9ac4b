"""Frame backbones that turn video snippets into features; exported to ONNX for vad-extract and vad-runtime."""
