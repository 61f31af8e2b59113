"""kubeinfer: a GitOps Kubernetes operator for GPU model inference.

The package is layered one way only: ``api`` ← ``planning`` ← ``controllers`` → ``kube`` / ``gpu``.
See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
