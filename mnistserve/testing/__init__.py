"""What tests and benchmarks share, like `numpy.testing`: servers and ports (`servers`), process-tree figures
(`processes`), digit images (`digits`), exported/ directories (`exported`), hostile requests (`attacks`) and the
headless browser (`browser`).

Import the submodule you need; none of them imports torch at import time (`exported` does inside its functions),
and `attacks` needs hypothesis, `browser` selenium when it is called.
"""
