"""Export half: ONNX with custom ``vad`` ops (plus ONNX-function fallbacks), TensorRT engines and plugins."""
