"""The MNIST service: ONNX models from `exported/`, served by BentoML. Never imports torch or `training`.

Modules: `preprocess` (bytes or arrays -> (1, 28, 28) float32, errors that carry an HTTP status),
`store` (manifest, checksums, onnxruntime sessions), `latency` (rolling figures), `service` (the BentoML
service and its typed POST APIs), `inputs` (the image routes' typed inputs: JSON, multipart and raw image
bodies), `limits` (ASGI middleware: body size, form bodies on JSON routes), `auth` (ASGI middleware: optional
API keys, `Authorization: Bearer`), `routes` (GET routes, the /ui page and plots), `errors` (every HTTP error
and its status), `schemas` (the answers and /classify bodies, described for BentoML's OpenAPI), `metrics`
(per-model Prometheus metrics on /metrics), `logs` (JSON log lines), `collector` (Python's garbage
collector set for serving).

Configuration: the MNISTSERVE_* variables of `mnistserve.settings` (README, "Configuration"), read when
BentoML constructs the service (five of them when it imports `service`: see `service.DEFINITION`).
"""
