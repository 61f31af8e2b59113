"""A real Kubernetes control plane for development and tests, built from published Go modules.

Modules, one job each:

- ``versions``: reads ``e2e/tools/versions.env``, the one place every third-party version is pinned.
- ``gomodules``: finds a pinned Go module's files on disk (``go mod download``).
- ``toolchain``: builds and caches etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, kubectl and kwok; regenerates ``e2e/tools/go.mod`` from the versions file.
- ``pki``: the certificates and keys the control plane needs.
- ``kubeconfig``: kubeconfig files for certificate and token credentials.
- ``processes``: child processes in their own process groups, always stopped on exit.
- ``control_plane``: starts and stops etcd, the API server, controller manager, scheduler, kwok.
- ``kwok_stages``: KWOK's Stage resources, read from the kwok module's own files.
- ``gpu_nodes``: fake GPU nodes that look like real ones (GPU Feature Discovery labels).
- ``crds``: third-party CRDs read from their own modules, and the repo's generated CRDs.
- ``kubectl``: runs the built kubectl against a kubeconfig.
- ``rbac``: applies ``manifests/`` RBAC and mints a ServiceAccount kubeconfig.
- ``operator``: runs ``kubeinfer run`` as a subprocess with its output in a file.
- ``gpu_agents``: one ``kubeinfer agent`` per GPU node, as the agent ServiceAccount bound to the
  node, replaying a recorded machine with a fault script the test appends to.
- ``debian``: commands from Debian's packages (Prometheus, Redis), installed on first use.
- ``logfmt``: key=value log formatting for the harness and ``make dev``.
- ``argocd``: builds ``argocd`` from Argo CD's Go module (wrapper ``e2e/tools/argocd``) and runs
  its offline health evaluator.
- ``health_fixtures``: reads the Argo CD health fixtures in ``tests/argocd/fixtures`` and names
  the repository's ``manifests/argocd`` (``kubeinfer argocd-health`` assembles the scripts).
- ``argocd_core``: Argo CD "Core" on loopback (Redis from Debian, argocd-repo-server,
  argocd-application-controller) with its CRDs and configuration installed.
- ``argocd_apps``: Applications as kubeinfer documents them, and a recorder of every state
  Argo CD reports for them.
- ``git_repo``: a local Git repository a test commits to and Argo CD pulls over ``file://``.

Shared by every test (one copy each; never redeclare them in a test module):

- ``waiting``: ``until`` and ``first``, the one polling loop with a deadline.
- ``objects``: ``get``, ``status`` and ``condition``: an object, its status, one condition.
- ``metrics_text``: samples out of a ``/metrics`` page, read with ``prometheus_client.parser``.

The harness's self-tests are in ``e2e/harness/tests/``.
"""
