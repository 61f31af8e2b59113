"""The harness's self-tests: its own guarantees (versions, builds, control plane, simulators,
scrape targets), kept beside the harness and apart from the product tests in ``e2e/tests``."""
