"""Training side of mnistserve: data, models, the loop, reports and the ONNX exporter (imports torch)."""
