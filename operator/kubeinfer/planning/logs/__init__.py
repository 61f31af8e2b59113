"""Logs: the OpenTelemetry Collector that a LogPolicy renders into.

- ``collector``: the collector container, its configuration text and the policy's named checks
- ``pipeline``: the collector configuration, every processor and OTTL statement
- ``sidecar``: the collector sidecars of InferenceService pods whose server logs to files
"""
