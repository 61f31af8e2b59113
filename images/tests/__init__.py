"""Checks of the OCI layouts ``make image`` writes (run by ``make image``, not by ``make test``)."""
