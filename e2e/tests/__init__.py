"""End-to-end tests against the real control plane built by ``e2e.harness``."""
