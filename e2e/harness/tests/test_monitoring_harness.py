"""The monitoring parts of the harness, without a cluster.

Covers: the prometheus-adapter wrapper module requires exactly the version ``versions.env`` pins
(and a different pin is refused with the fix named); the adapter's RBAC comes from its own
module's manifests and names its ServiceAccount; the APIService points at an ExternalName Service
on localhost with a CA bundle, never skipping TLS verification; Prometheus' configuration
discovers targets from files and Prometheus itself answers on loopback only.
"""

from __future__ import annotations

import base64
import dataclasses
import pathlib

import pytest

from e2e.harness import processes, prometheus, prometheus_adapter, versions


def test_the_adapter_wrapper_module_builds_exactly_the_pinned_version() -> None:
    prometheus_adapter.check_wrapper()


def test_a_different_pin_is_refused_with_the_fix_named() -> None:
    other = dataclasses.replace(versions.load(), prometheus_adapter="v0.11.2")
    with pytest.raises(prometheus_adapter.AdapterError, match="go mod tidy"):
        prometheus_adapter.check_wrapper(other)


def test_the_adapter_identity_comes_from_its_module_manifests() -> None:
    objects = prometheus_adapter.module_objects(versions.load())
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "RoleBinding",
        "ServiceAccount",
    ]
    bindings = [o for o in objects if o["kind"].endswith("Binding")]
    for binding in bindings:
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": prometheus_adapter.NAME,
                "namespace": prometheus_adapter.NAMESPACE,
            }
        ]


def test_the_apiservice_reaches_loopback_through_an_external_name_and_verifies_tls() -> None:
    service, api_service = prometheus_adapter.registration(b"PEM", 4443)
    assert service["spec"] == {"type": "ExternalName", "externalName": "localhost"}
    spec = api_service["spec"]
    assert api_service["metadata"]["name"] == prometheus_adapter.API_SERVICE
    assert base64.b64decode(spec["caBundle"]) == b"PEM"
    assert "insecureSkipTLSVerify" not in spec
    assert spec["service"] == {
        "name": "prometheus-adapter",
        "namespace": "monitoring",
        "port": 4443,
    }


def test_prometheus_discovers_targets_from_files(tmp_path: pathlib.Path) -> None:
    config = prometheus.render_config(tmp_path)
    (job,) = config["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "*.json")]
    assert "static_configs" not in job


def test_prometheus_listens_on_loopback_and_picks_up_target_files(tmp_path: pathlib.Path) -> None:
    with processes.Supervisor() as supervisor:
        running = prometheus.start(supervisor, tmp_path)
        assert running.url.startswith("http://127.0.0.1:")
        running.write_targets("none", [])
        assert (tmp_path / "targets" / "none.json").read_text(encoding="utf-8") == "[]"
        assert running.query("vector(1)")[0]["value"][1] == "1"
