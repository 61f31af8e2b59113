"""The container images and the tooling that builds them without a container daemon.

``images/operator/Dockerfile`` and ``images/collector/Dockerfile`` are the images' recipes for
a container builder; ``python -m images.build`` (``make image``) builds the same images on a
plain Linux machine as OCI image layouts and runs them in their root filesystems. Nothing here
is shipped inside the ``kubeinfer`` package or imported by it.
"""
