"""The MNIST service: ONNX models from `exported/`, served by BentoML. Never imports torch or `training`.

Modules: `preprocess` (bytes or arrays -> (1, 28, 28) float32, errors that carry an HTTP status),
`store` (manifest, checksums, onnxruntime sessions), `latency` (rolling figures), `service` (the BentoML
service and its typed POST APIs), `gate` (ASGI middleware: multipart and raw bodies, size limits), `auth`
(ASGI middleware: optional API keys, `Authorization: Bearer`), `routes` (GET routes, the /ui page and plots),
`openapi` (the completed /docs.json), `errors` (every HTTP error and its status), `schemas` (the JSON bodies
of the POST APIs), `metrics` (per-model Prometheus metrics on /metrics), `logs` (JSON log lines).

Configuration: the MNISTSERVE_* variables of `mnistserve.settings` (README, "Configuration"), read once
when the service starts.
"""
