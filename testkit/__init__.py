"""What tests and benchmarks share, kept beside the package and never installed (as torchvision keeps
`references/`): servers and ports (`servers`), process-tree figures (`processes`), digit images (`digits`),
exported/ directories (`exported`), hostile requests (`attacks`), the headless browser (`browser`), Docker
containers (`containers`) and Prometheus scrapes (`prometheus`).

Import the submodule you need; none of them imports torch at import time (`exported` does inside its functions),
and `attacks` needs hypothesis, `browser` selenium when it is called.
"""
