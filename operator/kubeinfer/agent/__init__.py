"""The kubeinfer node agent: publishes its node's GPUs (``kubeinfer agent``).

Modules: ``snapshot`` (discovery → the published inventory, GPU Feature Discovery labels and
the DRA ResourceSlice), ``sampling`` (the memory sample window), ``run`` (the event and
sampling loop and the writes to its own Node).
"""
