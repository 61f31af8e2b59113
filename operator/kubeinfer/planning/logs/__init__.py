"""Logs: the OpenTelemetry Collector that a LogPolicy renders into.

- ``pipeline``: the collector configuration, every processor and OTTL statement
- ``sidecar``: the collector sidecars of InferenceService pods whose server logs to files
"""
