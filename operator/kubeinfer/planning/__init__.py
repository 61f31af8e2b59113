"""Pure decisions: given spec, observed state and ``now``, return desired objects and status.

Nothing here performs I/O, reads a clock, or imports kopf, aiohttp, pynvml, prometheus_client or
``kubeinfer.kube``; the import-linter contracts in ``.importlinter`` enforce it.

Modules and packages, from the top of the layers down:

- ``render``: offline rendering of a manifest's children (``kubeinfer render``)
- ``inference_service``, ``gpu_pool``, ``chaos_experiment``, ``log_policy``: each kind's planner
- ``serving``: the children that serve a model version (Deployment, Service, route, autoscaler)
- ``rollout``: moving a candidate version to stable or back, and its GPUs
- ``logs``: the log collector's configuration and sidecars
- ``gpu``: GPU topology, health, placement and memory risk
- ``conditions``: condition merge and ``Ready`` derivation
- ``children``: child metadata (names, labels, owner references, content hash)
- ``labels``: every ``kubeinfer.io`` label, annotation and gate key, and their Prometheus names
"""
