"""mnistserve: train, compare, export and serve five MNIST architectures.

Importing this package stays light (no torch): `mnistserve.contracts` is shared with the service.
"""

__version__ = "0.1.0"
