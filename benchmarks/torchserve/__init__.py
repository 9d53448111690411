"""TorchServe serving the same exported model as the service: an onnxruntime handler, its config, its start-up."""
