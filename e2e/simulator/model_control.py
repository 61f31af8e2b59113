"""Which version of its model a simulator serves, and Triton's model-control API to change it.

Owns: the model's version state (the version loaded, one being loaded, failed and unloaded
ones), per-version settings (a behaviour document laid over the simulator's general behaviour
while that version is loaded, a load error, a load delay), the log of every load and unload,
and the HTTP surface of Triton's model repository extension (KServe v2 protocol + Triton):

- ``POST /v2/repository/models/{model}/load``, optional body
  ``{"parameters": {"config": "<model configuration as a JSON string>"}}``; the version comes
  from the configuration's ``version_policy`` (``specific.versions`` with one version, or
  ``latest``), else the default version. Synchronous: 200 with an empty body once loaded; the
  loaded version serves until the new one is ready, then they swap. Failure: 400
  ``{"error": "..."}`` and the previous version keeps serving.
- ``POST /v2/repository/models/{model}/unload``: 200, the model is no longer ready.
- ``POST /v2/repository/index`` (body ``{"ready": true}`` optional): ``[{"name", "version",
  "state", "reason"}]``, ``version`` a string and ``state`` READY, LOADING or UNAVAILABLE (with
  the ``reason``), as Triton serialises it; a model never loaded is just ``{"name"}``.
- ``GET /v2/models/{model}[/versions/{version}]/ready``: 200 with no body when that version
  (any version) is loaded and ready, else 400 ``{"error": "Model version not ready"}``.
- admin: ``GET /admin/versions``, ``PUT /admin/versions/{version}`` with
  ``{"behaviour": {...}, "loadError": "...", "loadSeconds": 0.5}`` (every key optional; the
  document replaces that version's settings), ``GET /admin/loads``: the load log
  (``[{"version", "outcome": Loaded|Failed|Unloaded, "via": startup|api, "error", "config"}]``).

The simulator loads one version at a time (Triton can serve several at once; a policy asking
for more is refused with a 400 saying so). Must not: serve completions or metrics (``server``
does), or sleep anywhere but in a load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp.web

from e2e.simulator import behaviour

MAX_LOAD_SECONDS = 600.0
READY = "READY"
LOADING = "LOADING"
UNAVAILABLE = "UNAVAILABLE"
LOADED = "Loaded"
FAILED = "Failed"
UNLOADED = "Unloaded"
_SETTINGS_KEYS = {"behaviour", "loadError", "loadSeconds"}


class ControlError(ValueError):
    """A model-control or admin request Triton (or the simulator) refuses; the message is the
    ``error`` of the 400 answer."""


@dataclasses.dataclass(frozen=True)
class VersionSettings:
    """How one version behaves: ``overlay`` (a behaviour document, camelCase keys of
    ``behaviour.Behaviour``; admin key ``behaviour``) laid over the general behaviour while it is
    loaded, ``load_error`` making its load fail with
    that message, and ``load_seconds`` a load takes."""

    overlay: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    load_error: str | None = None
    load_seconds: float = 0.0

    @classmethod
    def from_json(cls, document: Any, general: behaviour.Behaviour) -> VersionSettings:
        """Validate an admin document against the current general behaviour."""
        if not isinstance(document, dict):
            raise ControlError("the body must be a JSON object")
        unknown = sorted(set(document) - _SETTINGS_KEYS)
        if unknown:
            raise ControlError(f"unknown keys {unknown}; known: {sorted(_SETTINGS_KEYS)}")
        overlay = document.get("behaviour") or {}
        if not isinstance(overlay, dict):
            raise ControlError("behaviour must be a JSON object")
        try:
            general.updated(overlay)
        except behaviour.BehaviourError as err:
            raise ControlError(f"behaviour: {err}") from err
        load_error = document.get("loadError")
        if load_error is not None and (not isinstance(load_error, str) or not load_error):
            raise ControlError("loadError must be a non-empty string or null")
        seconds = document.get("loadSeconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ControlError(f"loadSeconds must be a number, got {seconds!r}")
        if not 0.0 <= seconds <= MAX_LOAD_SECONDS:
            raise ControlError(f"loadSeconds must be in [0, {MAX_LOAD_SECONDS:.0f}]")
        return cls(overlay=dict(overlay), load_error=load_error, load_seconds=float(seconds))

    def to_json(self) -> dict[str, Any]:
        """The admin endpoint's representation."""
        return {
            "behaviour": dict(self.overlay),
            "loadError": self.load_error,
            "loadSeconds": self.load_seconds,
        }


@dataclasses.dataclass(frozen=True)
class Load:
    """One entry of the load log: a version loaded, failed to load, or unloaded; ``via`` is
    ``startup`` for the load a server does when it starts, ``api`` for model-control calls;
    ``config`` the model configuration a load request carried (None: none)."""

    version: int
    outcome: str
    via: str
    error: str | None = None
    config: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "outcome": self.outcome,
            "via": self.via,
            "error": self.error,
            "config": dict(self.config) if self.config is not None else None,
        }


class ModelState:
    """The versions of one model: ``versions`` in the repository, ``default`` loaded without a
    version policy; with ``loaded_at_start`` the default is loaded when the server starts (and
    ready ``startup_seconds`` later), otherwise nothing is, as in Triton's explicit mode."""

    def __init__(
        self,
        model: str,
        *,
        versions: Sequence[int],
        default: int,
        loaded_at_start: bool,
        startup_seconds: float = 0.0,
    ) -> None:
        self.model = model
        self.versions = tuple(sorted(versions))
        self.default = default
        self.loaded: int | None = None
        self.settings: dict[int, VersionSettings] = {}
        self.loads: list[Load] = []
        self._states: dict[int, tuple[str, str]] = {}
        self._ready_at = time.monotonic() + startup_seconds
        self._lock: asyncio.Lock | None = None
        if loaded_at_start:
            self.loaded = default
            self._states[default] = (READY, "")
            self.loads.append(Load(default, LOADED, "startup"))

    # -- reading ----------------------------------------------------------------------------

    def ready(self, version: int | None = None) -> bool:
        """Whether ``version`` (any version when None) is loaded and has finished loading."""
        if self.loaded is None or time.monotonic() < self._ready_at:
            return False
        return version is None or version == self.loaded

    def effective(self, general: behaviour.Behaviour) -> behaviour.Behaviour:
        """The behaviour requests get now: the loaded version's overlay on ``general``."""
        settings = self.settings.get(self.loaded) if self.loaded is not None else None
        if settings is None or not settings.overlay:
            return general
        return general.updated(settings.overlay)

    def check_overlays(self, general: behaviour.Behaviour) -> None:
        """``BehaviourError`` if a version's overlay does not hold on ``general`` (e.g. a
        jitter above a new, lower latency), so a change of the general behaviour is refused."""
        for version, settings in sorted(self.settings.items()):
            try:
                general.updated(settings.overlay)
            except behaviour.BehaviourError as err:
                raise behaviour.BehaviourError(f"version {version}'s behaviour: {err}") from err

    def index(self, *, ready_only: bool = False) -> list[dict[str, str]]:
        """Triton's repository index of this model."""
        entries = []
        for version, (recorded, reason) in sorted(self._states.items()):
            # A version recorded READY whose start-up load has not finished is still LOADING.
            state = LOADING if recorded == READY and not self.ready(version) else recorded
            if ready_only and state != READY:
                continue
            entry = {"name": self.model, "version": str(version), "state": state}
            if reason:
                entry["reason"] = reason
            entries.append(entry)
        if not self._states and not ready_only:
            entries.append({"name": self.model})
        return entries

    # -- changing ---------------------------------------------------------------------------

    def set_version(self, version: int, settings: VersionSettings) -> None:
        """Replace the settings of ``version``; ``ControlError`` for a version not served."""
        if version not in self.versions:
            raise ControlError(f"version {version} is not in the repository {self.versions}")
        self.settings[version] = settings

    async def load(self, config: Mapping[str, Any] | None) -> None:
        """Load the version ``config`` asks for, or raise ``ControlError`` with Triton's message;
        the loaded version keeps serving until the new one is ready, or if it fails."""
        version = self._wanted(config)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # Triton serialises the loads of one model
            settings = self.settings.get(version, VersionSettings())
            if version not in self.versions:
                reason = f"Not found: version {version} is not in the model repository"
            else:
                reason = settings.load_error or ""
            if version != self.loaded:
                self._states[version] = (LOADING, "")
            await asyncio.sleep(settings.load_seconds)
            if reason:
                if version != self.loaded:  # a failed reload leaves the serving version be
                    self._states[version] = (UNAVAILABLE, reason)
                self.loads.append(Load(version, FAILED, "api", reason, config))
                raise ControlError(
                    f"load failed for model '{self.model}': version {version} is at "
                    f"{UNAVAILABLE} state: {reason};"
                )
            previous, self.loaded = self.loaded, version
            if previous is not None and previous != version:
                self._states[previous] = (UNAVAILABLE, "unloaded")
            self._states[version] = (READY, "")
            self._ready_at = 0.0
            self.loads.append(Load(version, LOADED, "api", config=config))

    def unload(self) -> None:
        """Unload whatever version is loaded (nothing to do when none is)."""
        if self.loaded is None:
            return
        self._states[self.loaded] = (UNAVAILABLE, "unloaded")
        self.loads.append(Load(self.loaded, UNLOADED, "api"))
        self.loaded = None

    def _wanted(self, config: Mapping[str, Any] | None) -> int:
        """The version a load with ``config`` loads, by its version policy."""
        policy = (config or {}).get("version_policy")
        if policy is None:
            return self.default
        if not isinstance(policy, dict) or len(policy) != 1:
            raise ControlError("version_policy must hold exactly one of latest, all, specific")
        (kind, body), *_ = policy.items()
        body = body or {}
        if kind == "specific":
            versions = body.get("versions") if isinstance(body, dict) else None
            if not isinstance(versions, list) or len(versions) != 1:
                raise ControlError(
                    "the simulator loads one version at a time: "
                    "version_policy.specific.versions must hold exactly one version"
                )
            return _version_number(versions[0])
        if kind == "latest" and _version_number(body.get("num_versions", 1)) == 1:
            return self.versions[-1]
        if kind == "all" and len(self.versions) == 1:
            return self.versions[0]
        raise ControlError(
            f"the simulator loads one version at a time; version_policy {json.dumps(policy)} "
            "would load several"
        )


def _version_number(value: Any) -> int:
    """A version as the model configuration's JSON holds it (int64: a number or a string)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ControlError(f"a model version must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError as err:
        raise ControlError(f"a model version must be an integer, got {value!r}") from err
    if number < 1:
        raise ControlError(f"a model version must be > 0, got {number}")
    return number


def _error(message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"error": message}, status=400)


async def _json_body(request: aiohttp.web.Request) -> Any:
    """The request's JSON, None for an empty body; ``ControlError`` when it is not JSON."""
    text = await request.text()
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as err:
        raise ControlError(f"failed to parse the request JSON buffer: {err}") from err


def _load_config(body: Any) -> dict[str, Any] | None:
    """The model configuration a load request carries (``parameters.config``), if any."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise ControlError("the load request must be a JSON object")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ControlError("parameters must be a JSON object")
    for key, value in parameters.items():
        if not isinstance(value, str):
            raise ControlError(f"parameter '{key}' must be a string")
        if key != "config" and not key.startswith("file:"):
            raise ControlError("unexpected error on creating Triton parameter")
    if "config" not in parameters:
        return None
    try:
        config = json.loads(parameters["config"])
    except ValueError as err:
        raise ControlError(f"failed to parse the model configuration: {err}") from err
    if not isinstance(config, dict):
        raise ControlError("the model configuration must be a JSON object")
    return config


def add_routes(
    app: aiohttp.web.Application,
    state: ModelState,
    general: Callable[[], behaviour.Behaviour],
) -> None:
    """Serve Triton's model-control API and the version admin endpoints for ``state``;
    ``general`` gives the simulator's current general behaviour (to validate overlays)."""

    def known(request: aiohttp.web.Request, verb: str) -> None:
        name = request.match_info["model"]
        if name != state.model:
            raise ControlError(f"failed to {verb} '{name}', failed to poll from model repository")

    async def load(request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            known(request, "load")
            await state.load(_load_config(await _json_body(request)))
        except ControlError as err:
            return _error(str(err))
        return aiohttp.web.Response(content_type="application/json")

    async def unload(request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            known(request, "unload")
        except ControlError as err:
            return _error(str(err))
        state.unload()
        return aiohttp.web.Response(content_type="application/json")

    async def index(request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            body = await _json_body(request) or {}
            ready_only = body.get("ready", False) if isinstance(body, dict) else False
            if not isinstance(ready_only, bool):
                raise ControlError("ready must be a boolean")
        except ControlError as err:
            return _error(str(err))
        return aiohttp.web.json_response(state.index(ready_only=ready_only))

    async def ready(request: aiohttp.web.Request) -> aiohttp.web.Response:
        text = request.match_info.get("version")
        version = None
        if text is not None:
            try:
                version = _version_number(text)
            except ControlError:
                return _error(
                    f"failed to get model version from specified version string '{text}', "
                    "version should be an integral value > 0"
                )
        if request.match_info["model"] == state.model and state.ready(version):
            return aiohttp.web.Response()
        return _error("Model version not ready")

    async def get_versions(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {str(v): s.to_json() for v, s in sorted(state.settings.items())}
        )

    async def put_version(request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            version = _version_number(request.match_info["version"])
            settings = VersionSettings.from_json(await _json_body(request), general())
            state.set_version(version, settings)
        except ControlError as err:
            return _error(str(err))
        return aiohttp.web.json_response(settings.to_json())

    async def loads(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response([entry.to_json() for entry in state.loads])

    app.router.add_post("/v2/repository/models/{model}/load", load)
    app.router.add_post("/v2/repository/models/{model}/unload", unload)
    app.router.add_post("/v2/repository/index", index)
    app.router.add_get("/v2/models/{model}/ready", ready)
    app.router.add_get("/v2/models/{model}/versions/{version}/ready", ready)
    app.router.add_get("/admin/versions", get_versions)
    app.router.add_put("/admin/versions/{version}", put_version)
    app.router.add_get("/admin/loads", loads)
