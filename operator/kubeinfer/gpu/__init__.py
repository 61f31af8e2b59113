"""GPU discovery at the node edge: NVML through pynvml, and a recorded-machine fake of it.

Modules: ``backend`` (the Protocol of the pynvml functions used, and the error tree),
``discovery`` (inventory and topology from a backend), ``events`` (XID / ECC event watch),
``smi_topo`` (parser of ``nvidia-smi topo -m``), ``fake_nvml`` (a pynvml-compatible backend
built from recorded machines). The topology model itself is pure and lives in
``kubeinfer.planning.gpu.topology`` so placement can read it without importing this package.

This package must not import kopf or the Kubernetes client; it never decides placement.
"""
