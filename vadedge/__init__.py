"""vadedge: weakly-supervised video anomaly detection, from training to the edge.

Sub-packages map the repository's top-level halves:
``vadedge.train`` (``train/``), ``vadedge.export`` (``export/``), ``vadedge.runtime`` (``runtime/``).
This root package stays free of PyTorch so the runtime installs on an edge box without it.
"""

__version__ = "0.1.0"
