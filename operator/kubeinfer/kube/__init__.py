"""The only code that talks to the API server: server-side apply, reads, status patches, events.

Everything here is asynchronous on top of the official ``kubernetes`` client's synchronous API,
run in a thread pool so kopf's event loop stays free.
"""
