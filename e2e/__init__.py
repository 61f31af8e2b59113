"""End-to-end suite and the real control-plane harness it runs on (see ``e2e.harness``)."""
