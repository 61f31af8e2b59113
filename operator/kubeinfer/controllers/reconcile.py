"""The one reconcile loop every kind runs: observe → plan → apply children → write status.

Level-triggered and idempotent: whatever woke it (a watch event of the resource or of a child, a
resync), it recomputes the whole desired state. A child is applied only when its content hash
differs from the one the watched copy carries; status is patched only when it differs
semantically; so a reconcile that changes nothing sends no write. Triggers are coalesced per
object: a burst of events runs one reconcile with the latest body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from kubeinfer.api import kinds
from kubeinfer.api.conditions import Condition, ConditionType, Reason
from kubeinfer.controllers import context
from kubeinfer.kube import errors, events, resources
from kubeinfer.planning import children, conditions, plans
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.labels import APPLIED_HASH_ANNOTATION

log = logging.getLogger(__name__)
Body = Mapping[str, Any]


Observe = Callable[[children.Owner, Any], Awaitable[Any]]
Planner = Callable[[children.Owner, Any, Any], plans.Plan[Any]]
Prepare = Callable[[children.Owner, Any, Any], Awaitable[None]]


class Controller:
    """Binds a kind to its observe and plan functions and runs its reconciles."""

    def __init__(
        self, kind: kinds.Kind, observe: Observe, plan: Planner, prepare: Prepare | None = None
    ) -> None:
        self.kind = kind
        self.observe = observe
        self.plan = plan
        self.prepare = prepare
        """Runs between planning and applying (a kind's own preparatory writes)."""
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._own_writes: dict[tuple[str, str], str] = {}
        """resourceVersion each object got from this controller's last status write."""

    def schedule(self, namespace: str, name: str) -> None:
        """Reconcile the object soon; repeated calls before it runs coalesce into one."""
        key = (namespace, name)
        if key in self._pending:
            return
        self._pending[key] = asyncio.get_running_loop().create_task(self._run(key))

    def _requeue(self, owner: children.Owner, delay: float | None) -> None:
        """Keep at most one timed reconcile per object: the latest plan's wish replaces older."""
        key = (owner.namespace, owner.name)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if delay:
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self.schedule, *key)

    def is_own_echo(self, body: Body) -> bool:
        """Whether a watch event only carries this controller's own last status write back.

        Such an event changes nothing the reconcile that wrote it did not already know, so it
        needs no reconcile of its own (that would only re-derive the same status).
        """
        meta = body["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        written = self._own_writes.get(key)
        if written is None or written != meta.get("resourceVersion"):
            return False
        del self._own_writes[key]
        return True

    def schedule_all(self, predicate: Callable[[Body], bool] = lambda body: True) -> None:
        """Schedule every known object of the kind that matches ``predicate``."""
        for body in context.current().store.all(self.kind.kind):
            if predicate(body):
                meta = body["metadata"]
                self.schedule(meta["namespace"], meta["name"])

    async def _run(self, key: tuple[str, str]) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._pending.pop(key, None)
            body = context.current().store.get(self.kind.kind, *key)
            if body is None:
                self._locks.pop(key, None)
                self._own_writes.pop(key, None)
                return
            try:
                await self.reconcile(body)
            except Exception:
                context.current().metrics.reconciles.labels(self.kind.kind, "error").inc()
                log.exception("Reconcile of %s %s/%s failed; retrying in 10s", self.kind.kind, *key)
                await asyncio.sleep(10)
                self.schedule(*key)

    async def reconcile(self, body: Body) -> None:
        """Bring one object's children and status in line with its spec."""
        ctx = context.current()
        started = time.perf_counter()
        owner = owner_of(body)
        try:
            spec: BaseModel | None = self.kind.spec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            spec = None
            invalid = _invalid_spec(err)
        if spec is None:
            plan_obs: Sequence[Observation] = (invalid,)
            status: BaseModel = self.kind.status()
            result = "invalid"
        else:
            observed = await self.observe(owner, spec)
            plan = self.plan(owner, spec, observed)
            if self.prepare is not None:
                await self.prepare(owner, spec, plan)
            failures = await self._apply_children(owner, body, plan.children)
            plan_obs = (*failures, *plan.observations) if failures else plan.observations
            status = plan.status
            result = "ok"
            # a planner that waits on time (a rollout step, an analysis interval) asks to be
            # reconciled again then, since no watch event may come
            self._requeue(owner, plan.requeue_after)
            # decisions a planner reports once (a replica's new GPU placement, a rollout step)
            for event in plan.events:
                await _post(body, warning=event.warning, reason=event.reason, message=event.message)
        await self._write_status(owner, body, plan_obs, status)
        ctx.metrics.reconciles.labels(self.kind.kind, result).inc()
        ctx.metrics.reconcile_seconds.labels(self.kind.kind).observe(time.perf_counter() - started)

    async def _apply_children(
        self, owner: children.Owner, body: Body, wanted: Sequence[children.Manifest]
    ) -> list[Observation]:
        wanted_keys = {(c["kind"], c["metadata"]["name"]) for c in wanted}
        stale = [c for c in wanted if not _up_to_date(c)]
        results = await asyncio.gather(*(self._apply_one(owner, body, c) for c in stale))
        failures = [r for r in results if isinstance(r, Observation)]
        applied = [
            f"{c['kind']} {c['metadata']['name']}"
            for c, r in zip(stale, results, strict=True)
            if r is True
        ]
        deleted = await self._prune(owner, wanted_keys)
        if applied:
            await _post(
                body,
                warning=False,
                reason=Reason.CHILDREN_APPLIED,
                message="Applied " + ", ".join(applied) + ".",
            )
        if deleted:
            await _post(
                body,
                warning=False,
                reason=Reason.CHILDREN_DELETED,
                message="Deleted " + ", ".join(deleted) + ".",
            )
        return failures[:1]

    async def _apply_one(
        self, owner: children.Owner, body: Body, child: children.Manifest
    ) -> Observation | bool:
        """Apply one child: True when applied, False when skipped, an observation when refused."""
        ctx = context.current()
        meta = child["metadata"]
        held_before = ctx.store.version(child["kind"], meta.get("namespace", ""), meta["name"])
        try:
            applied = await ctx.kube.apply(child)
        except errors.NotServed:
            await _post(
                body,
                warning=True,
                reason=Reason.CHILD_API_NOT_SERVED,
                message=f"{child['apiVersion']} {child['kind']} is not served by this cluster; "
                f"{meta['name']} was not created.",
            )
            return False
        except errors.NamespaceTerminating:
            # The namespace is going away with everything in it; recreating children is moot.
            return False
        except errors.KubeError as err:
            return Observation.false(
                ConditionType.READY,
                Reason.APPLY_FAILED,
                f"{child['kind']} {meta['name']} was refused: {err.message}",
            )
        ctx.store.put_written(child["kind"], applied, held_before=held_before)
        ctx.metrics.children_applied.labels(self.kind.kind, child["kind"]).inc()
        log.info(
            "Applied %s %s/%s for %s %s",
            child["kind"],
            owner.namespace,
            meta["name"],
            self.kind.kind,
            owner.name,
        )
        return True

    async def _prune(self, owner: children.Owner, wanted: set[tuple[str, str]]) -> list[str]:
        """Delete children this owner no longer wants (a removed version, a switched provider)."""
        ctx = context.current()
        deleted: list[str] = []
        for res in resources.CHILD_KINDS:
            for child in ctx.store.owned_by(res.kind, owner.namespace, owner.uid):
                name = child["metadata"]["name"]
                if (res.kind, name) not in wanted:
                    await ctx.kube.delete(res.api_version, res.kind, owner.namespace, name)
                    ctx.store.remove(res.kind, child)
                    deleted.append(f"{res.kind} {name}")
                    log.info(
                        "Deleted %s %s/%s no longer wanted by %s",
                        res.kind,
                        owner.namespace,
                        name,
                        owner.name,
                    )
        return deleted

    async def _write_status(
        self,
        owner: children.Owner,
        body: Body,
        observations: Sequence[Observation],
        fields: BaseModel,
    ) -> None:
        ctx = context.current()
        old_raw = dict(body.get("status") or {})
        previous = [Condition.model_validate(c) for c in old_raw.get("conditions", [])]
        merged = conditions.merge(
            previous, _dedupe(observations), generation=owner.generation, now=datetime.now(UTC)
        )
        new = fields.model_copy(
            update={"observed_generation": owner.generation, "conditions": merged}
        )
        try:
            old = self.kind.status.model_validate(old_raw)
        except ValidationError:
            old = None
        if old == new:
            return
        patch = merge_patch(old_raw, new.model_dump(by_alias=True, mode="json", exclude_none=True))
        try:
            written = await ctx.kube.patch_status(
                owner.api_version, owner.kind, owner.namespace, owner.name, patch
            )
        except errors.NotFound:
            # Deleted while this reconcile ran (its namespace too, perhaps): the DELETED event
            # removes it from the store, and there is nothing left to report on.
            log.info(
                "%s %s/%s was deleted before its status was written",
                self.kind.kind,
                owner.namespace,
                owner.name,
            )
            return
        ctx.metrics.status_writes.labels(self.kind.kind).inc()
        self._remember_write(body, written)
        for cond in conditions.transitions(previous, merged):
            ctx.metrics.condition_events.labels(
                self.kind.kind, owner.namespace, cond.type, cond.status, cond.reason
            ).inc()
            message = f"{cond.type} is {cond.status}: {cond.message}"
            await _post(
                body,
                warning=conditions.is_abnormal(cond),
                reason=Reason(cond.reason),
                message=message,
            )
        ready = next(c for c in merged if c.type == ConditionType.READY)
        log.info(
            "Updated %s %s/%s status: Ready=%s (%s)",
            self.kind.kind,
            owner.namespace,
            owner.name,
            ready.status,
            ready.reason,
        )

    def _remember_write(self, read: Body, written: Body) -> None:
        """Put a status write's result into the store at once and remember its version.

        The watch event that brings the write back comes later; a reconcile that starts before
        it would otherwise read the old status and repeat the transitions (and their Events).
        The store takes the written body only while it still holds the body the reconcile read,
        so a newer change that has already arrived is never replaced.
        """
        meta = written["metadata"]
        context.current().store.put_written(
            self.kind.kind, written, held_before=read["metadata"].get("resourceVersion")
        )
        key = (meta.get("namespace") or "", meta["name"])
        self._own_writes[key] = meta.get("resourceVersion", "")


def merge_patch(old: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new``: keys ``new`` lacks are set to null, at
    every depth (a merge patch leaves absent keys as they were, so a nested field that became
    empty, such as ``rollout.retired``, would otherwise never clear)."""
    patch = dict(new)
    for key, value in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(value, Mapping) and isinstance(new[key], dict):
            patch[key] = merge_patch(value, new[key])
    return patch


def _up_to_date(child: children.Manifest) -> bool:
    """Whether the watched copy of ``child`` already carries its desired content hash."""
    meta = child["metadata"]
    seen = context.current().store.get(child["kind"], meta.get("namespace", ""), meta["name"])
    digest = meta["annotations"][APPLIED_HASH_ANNOTATION]
    return (
        seen is not None
        and seen["metadata"].get("annotations", {}).get(APPLIED_HASH_ANNOTATION) == digest
    )


async def _post(body: Body, *, warning: bool, reason: Reason, message: str) -> None:
    """Post an Event on the object through the operator's own client (see ``kube.events``)."""
    await events.post(context.current().kube, body, warning=warning, reason=reason, note=message)


def _dedupe(observations: Sequence[Observation]) -> list[Observation]:
    """Keep the first observation of each type (apply failures override the planner's Ready)."""
    seen: set[str] = set()
    out = []
    for obs in observations:
        if obs.type not in seen:
            seen.add(obs.type)
            out.append(obs)
    return out


def _invalid_spec(err: ValidationError) -> Observation:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return Observation.false(
        ConditionType.READY,
        Reason.INVALID_SPEC,
        f"spec.{where}: {first['msg']} ({err.error_count()} problems in all).",
    )


def owner_of(body: Body) -> children.Owner:
    """Return the :class:`children.Owner` identity of a custom resource body."""
    meta = body["metadata"]
    return children.Owner(
        api_version=body["apiVersion"],
        kind=body["kind"],
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation", 0)),
        labels=dict(meta.get("labels") or {}),
    )
