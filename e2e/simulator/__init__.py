"""An inference-server simulator: the model pods KWOK cannot run, on loopback.

Modules, one job each:

- ``behaviour``: latency and error rate a simulator answers with, changed at run time.
- ``server``: the aiohttp application: the runtimes' health, readiness and model endpoints,
  OpenAI-style ``POST /v1/completions``, Prometheus ``/metrics`` and the admin endpoint.
- ``model_control``: which version of the model is loaded, Triton's model-control API to change
  it, per-version behaviour and load failures, and the load log.
- ``fleet``: simulators on 127.0.0.x (or on their pods' loopback IPs) that stand for the pods
  of a Deployment, one per pod, served from one event loop in a background thread.
- ``load``: a load generator bounded in request count and time that only sends to loopback.

Command line (``python -m e2e.simulator --help``)::

    python -m e2e.simulator serve --host 127.0.0.2 --port 8000 --runtime vllm --model m
    python -m e2e.simulator serve --runtime triton --versions 1,2 --start-unloaded
    python -m e2e.simulator load --target http://127.0.0.2:8000 --rate 20 --duration 30

Must not: send traffic anywhere but loopback, or talk to the API server (``fleet`` is told
which pods exist; it does not look).
"""
