"""Deployment: INT8 quantisation of exported front-ends (``superpoint quantize``) and its
calibration set. ``calibration`` needs no ONNX Runtime; ``quantize`` imports ``onnx`` and
loads ONNX Runtime's quantiser when it runs."""
