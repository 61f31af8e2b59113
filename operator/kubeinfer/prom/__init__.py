"""The Prometheus edge: instant queries over its HTTP API. Knows nothing of rollouts."""
