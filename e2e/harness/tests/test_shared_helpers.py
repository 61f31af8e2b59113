"""The helpers every e2e test shares, without a cluster.

Covers: ``metrics_text`` finds samples by the name the page writes (a counter with or without
``_total``, a histogram bucket), with labels in any order and as a subset, sums and groups them,
and names what it did not find; ``objects.condition`` reads a condition from an object or from a
bare status and answers {} when it is absent.
"""

from __future__ import annotations

import pytest

from e2e.harness import metrics_text, objects

PAGE = """\
# HELP kubeinfer_api_requests_total API requests.
# TYPE kubeinfer_api_requests_total counter
kubeinfer_api_requests_total{code="200",kind="Deployment",verb="apply"} 3.0
kubeinfer_api_requests_total{code="409",kind="Deployment",verb="apply"} 1.0
kubeinfer_api_requests_total{code="200",kind="InferenceService",verb="patch_status"} 2.0
# HELP nv_inference_count Inferences.
# TYPE nv_inference_count counter
nv_inference_count{version="1",model="m"} 5.0
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1.0
latency_seconds_bucket{le="+Inf"} 2.0
latency_seconds_count 2.0
latency_seconds_sum 0.3
"""


def test_samples_are_found_by_the_name_the_page_writes_with_labels_in_any_order() -> None:
    assert metrics_text.value(PAGE, "nv_inference_count", model="m", version="1") == 5.0
    assert metrics_text.value(PAGE, "latency_seconds_bucket", le="+Inf") == 2.0
    assert metrics_text.total(PAGE, "kubeinfer_api_requests_total", kind="Deployment") == 4.0
    assert metrics_text.sum_by(PAGE, "kubeinfer_api_requests_total", "verb") == {
        "apply": 4.0,
        "patch_status": 2.0,
    }


def test_a_missing_sample_is_named_or_counts_as_zero() -> None:
    with pytest.raises(LookupError, match="no sample nv_inference_count"):
        metrics_text.value(PAGE, "nv_inference_count", version="2")
    assert metrics_text.total(PAGE, "kubeinfer_reconcile_total") == 0.0


def test_a_condition_is_read_from_an_object_or_its_status() -> None:
    status = {"conditions": [{"type": "Ready", "status": "True", "reason": "AsExpected"}]}
    body = {"metadata": {"name": "x"}, "status": status}
    assert objects.condition(body, "Ready")["reason"] == "AsExpected"
    assert objects.condition(status, "Ready")["status"] == "True"
    assert objects.condition({"status": status}, "Ready")["status"] == "True"
    assert objects.condition(body, "Placed") == {}
    assert objects.condition({"metadata": {"name": "new"}}, "Ready") == {}
