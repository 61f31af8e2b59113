"""Pure decisions: given spec, observed state and ``now``, return desired objects and status.

Nothing here performs I/O, reads a clock, or imports kopf, aiohttp, pynvml, prometheus_client or
``kubeinfer.kube``; the import-linter contracts in ``.importlinter`` enforce it.
"""
