"""Who holds which GPU (``planning.gpu.holders.held``): claims and recorded placements together,
in every namespace, each holder once and sorted; a service's own hold left out on request."""

from __future__ import annotations

from kubeinfer.planning.gpu import holders

CLAIMS = (
    holders.Claim("ns/me", {"n0": frozenset({0, 1})}),
    holders.Claim("ns/other", {"n0": frozenset({2, 3})}),
)
RECORDED = (
    holders.Recorded("ns/me", (("n0", 0), ("n0", 1))),
    holders.Recorded("team-b/tenant", (("n1", 4), ("n1", 5), ("n0", 3))),
)


def test_claims_and_placements_of_every_namespace_hold_gpus() -> None:
    held = holders.held(claims=CLAIMS, recorded=RECORDED)
    assert held == {
        "n0": {0: ("ns/me",), 1: ("ns/me",), 2: ("ns/other",), 3: ("ns/other", "team-b/tenant")},
        "n1": {4: ("team-b/tenant",), 5: ("team-b/tenant",)},
    }


def test_a_gpu_held_by_another_namespaces_service_is_held_for_everyone_else() -> None:
    held = holders.held(claims=(), recorded=RECORDED, excluding="ns/me")
    assert set(held["n1"]) == {4, 5}
    assert held["n0"] == {3: ("team-b/tenant",)}


def test_a_service_does_not_hold_gpus_against_itself() -> None:
    held = holders.held(claims=CLAIMS, recorded=RECORDED, excluding="ns/me")
    assert 0 not in held["n0"] and 1 not in held["n0"]
    assert held["n0"][3] == ("ns/other", "team-b/tenant")
