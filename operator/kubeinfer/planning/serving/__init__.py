"""Serving: the children that run and reach a model version.

- ``model_server``: a version's Deployment and Service, the PDB and the ServiceMonitor
- ``runtimes``: how vLLM, Triton and a generic server are started, probed and configured
- ``traffic``: the route splitting or mirroring requests between versions
- ``gateway_support``: whether the parent Gateways can mirror requests
- ``autoscaling``: the SLA tier compiled into an HPA or a KEDA ScaledObject
- ``tiers``: what gold, silver and bronze mean
"""
