"""``make image``: the kubeinfer and log agent images as OCI image layouts, built with no daemon.

Owns: the on-machine build of what ``images/operator/Dockerfile`` and
``images/collector/Dockerfile`` describe, layer by layer, and the checks run in each built
image's unpacked root filesystem (read-only, as the image's user). The images' configuration
(user, entrypoint, command, environment, labels) is spelled here once per image and kept equal
to the Dockerfiles' by a unit test.
Must not: push an image anywhere, run as part of ``make test``, or pin a version (the base's
Debian suite lives in ``images.rootfs``, umoci's and the collector's versions where the harness
keeps them).

Where the on-machine images differ from the Dockerfiles' (see ``images/README.md``): the base
is Debian bookworm from debootstrap with Debian's ``python3.11`` at ``/usr/bin`` instead of the
pinned ``python:3.11-slim-bookworm`` image (the build needs only Debian's archive, PyPI and the
Go module proxy, no container registry); the collector image's static base (CA bundle,
``/etc/passwd`` with ``nonroot``, ``/tmp``) is assembled from that Debian base instead of taken
from distroless; the wheels are fetched and built by the host's pip, then installed inside the
image's root filesystem offline.

Command line::

    python -m images.build                 # build both into build/images/, then run the checks
    python -m images.build --no-check collector
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence

import yaml

import kubeinfer
from e2e.harness import gomodules, logfmt, otelcol, versions
from images import rootfs, umoci
from kubeinfer.api import log_policy as log_policy_api
from kubeinfer.planning import children
from kubeinfer.planning.logs import collector as log_collector
from kubeinfer.planning.logs import pipeline as log_agent

log = logging.getLogger("images.build")

REPO_ROOT = versions.REPO_ROOT
OUTPUT_DIR = REPO_ROOT / "build" / "images"
NONROOT = f"{rootfs.NONROOT_UID}:{rootfs.NONROOT_UID}"
COLLECTOR_PATH = "/usr/local/bin/otelcol-kubeinfer"
VENV = "/opt/kubeinfer"
EXAMPLE_POLICY = REPO_ROOT / "manifests" / "examples" / "05-logpolicy.yaml"
#: What the wheel is built from: the files images/operator/Dockerfile copies.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "operator")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_LICENSE = "Apache-2.0"


class ImageBuildError(RuntimeError):
    """A build step or a check in a built image failed."""


@dataclasses.dataclass(frozen=True)
class Image:
    """One image: its name and tag as the manifests reference them, and its configuration."""

    name: str
    tag: str
    config: umoci.Config

    @property
    def reference(self) -> str:
        """``ghcr.io/kubeinfer/<name>:<tag>``, as manifests/ and the planner name it."""
        return f"ghcr.io/kubeinfer/{self.name}:{self.tag}"


def _labels(title: str, description: str, version: str) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.licenses": _LICENSE,
    }


def operator_image() -> Image:
    """``ghcr.io/kubeinfer/kubeinfer:<package version>``: operator, node agent, validator."""
    version = kubeinfer.__version__
    return Image(
        name="kubeinfer",
        tag=version,
        config=umoci.Config(
            user=NONROOT,
            entrypoint=("kubeinfer",),
            cmd=("run", "--all-namespaces"),
            env={
                "PATH": f"{VENV}/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "KUBEINFER_COLLECTOR": COLLECTOR_PATH,
            },
            labels=_labels(
                "kubeinfer",
                "kubeinfer operator and GPU node agent, with the log agent as LogPolicy validator",
                version,
            ),
        ),
    )


def collector_image() -> Image:
    """``ghcr.io/kubeinfer/otelcol-kubeinfer:<collector release>``: the log agent alone."""
    version = otelcol.collector_version().removeprefix("v")
    return Image(
        name="otelcol-kubeinfer",
        tag=version,
        config=umoci.Config(
            user=NONROOT,
            entrypoint=(COLLECTOR_PATH,),
            # What the distroless base sets; the Dockerfile inherits them from it.
            env={"PATH": _SYSTEM_PATH, "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"},
            labels=_labels(
                "otelcol-kubeinfer",
                "kubeinfer log agent: OpenTelemetry Collector with kubeinfer's components",
                version,
            ),
        ),
    )


# --- source identity -------------------------------------------------------------------------


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def source_revision() -> str:
    """The commit the images are built from, ``-dirty`` when the work tree has changes."""
    commit = _git("rev-parse", "HEAD") or "unknown"
    return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def source_created() -> str:
    """The commit's time (RFC 3339), so two builds of one commit carry the same date."""
    return _git("log", "-1", "--format=%cI") or datetime.datetime.now(datetime.UTC).isoformat()


# --- building --------------------------------------------------------------------------------


def _step(name: str, timings: dict[str, float]) -> Callable[[], None]:
    started = time.monotonic()

    def done() -> None:
        timings[name] = round(time.monotonic() - started, 1)
        log.info("Image build step done", extra={"step": name, "elapsed_s": timings[name]})

    return done


def _wheelhouse(target: pathlib.Path) -> None:
    """The kubeinfer wheel, its dependencies' wheels and pip's own, by the host's pip.

    Built from a copy of the files the Dockerfile copies, so a stale ``build/`` in the work
    tree cannot leak into the wheel.
    """
    with tempfile.TemporaryDirectory(prefix="kubeinfer-src-") as scratch:
        source = pathlib.Path(scratch)
        for name in WHEEL_SOURCES:
            path = REPO_ROOT / name
            if path.is_dir():
                ignored = shutil.ignore_patterns("__pycache__", "*.egg-info")
                shutil.copytree(path, source / name, ignore=ignored)
            else:
                shutil.copy2(path, source / name)
        wanted = (str(source), "pip")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(target), *wanted],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise ImageBuildError(f"pip wheel failed:\n{(result.stdout + result.stderr)[-4000:]}")


def _virtualenv(stage: pathlib.Path) -> pathlib.Path:
    """Create ``/opt/kubeinfer`` inside ``stage`` and install kubeinfer into it, without pip."""
    wheels = stage / "tmp" / "wheelhouse"
    wheels.mkdir()
    try:
        _wheelhouse(wheels)
        (pip_wheel,) = sorted(wheels.glob("pip-*.whl"))
        rootfs.chroot(stage, ["/usr/bin/python3.11", "-m", "venv", "--without-pip", VENV])
        rootfs.chroot(
            stage,
            [
                *(f"{VENV}/bin/python", f"/tmp/wheelhouse/{pip_wheel.name}/pip", "install"),
                *("--no-index", "--no-cache-dir", "--find-links", "/tmp/wheelhouse", "kubeinfer"),
            ],
        )
    finally:
        rootfs.remove_tree(wheels)
    return stage / VENV.lstrip("/")


def _static_base(base: pathlib.Path, target: pathlib.Path) -> None:
    """What the collector image takes from distroless static: CA bundle, users, ``/tmp``."""
    uid = rootfs.NONROOT_UID
    (target / "etc" / "ssl" / "certs").mkdir(parents=True)
    shutil.copy2(
        base / "etc" / "ssl" / "certs" / "ca-certificates.crt",
        target / "etc" / "ssl" / "certs" / "ca-certificates.crt",
    )
    (target / "etc" / "passwd").write_text(
        f"root:x:0:0:root:/root:/sbin/nologin\n"
        f"{rootfs.NONROOT_NAME}:x:{uid}:{uid}:{rootfs.NONROOT_NAME}:/home/{rootfs.NONROOT_NAME}:/sbin/nologin\n",
        encoding="utf-8",
    )
    (target / "etc" / "group").write_text(
        f"root:x:0:\n{rootfs.NONROOT_NAME}:x:{uid}:\n", encoding="utf-8"
    )
    (target / "etc" / "nsswitch.conf").write_text("hosts: files dns\n", encoding="utf-8")
    home = target / "home" / rootfs.NONROOT_NAME
    home.mkdir(parents=True)
    home.chmod(0o700)
    shutil.chown(home, uid, uid)
    (target / "tmp").mkdir()
    (target / "tmp").chmod(0o1777)
    for path in [target, *target.rglob("*")]:
        if path.is_dir() and path.name not in {"tmp", rootfs.NONROOT_NAME}:
            path.chmod(0o755)
        elif path.is_file():
            path.chmod(0o644)


def build_operator(
    image: Image,
    *,
    base: pathlib.Path,
    collector: pathlib.Path,
    umoci_binary: pathlib.Path,
    output: pathlib.Path,
    timings: dict[str, float],
) -> umoci.Layout:
    """Layers: the Debian base with Python, the virtualenv, the collector binary."""
    layout = umoci.Layout(binary=umoci_binary, path=output / image.name, tag=image.tag)
    rootfs.remove_tree(layout.path)
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=output) as scratch:
        stage = pathlib.Path(scratch) / "rootfs"
        done = _step("operator: copy the base", timings)
        rootfs.copy_tree(base, stage)
        done()
        done = _step("operator: wheels and virtualenv", timings)
        venv = _virtualenv(stage)
        done()
        done = _step("operator: layers and configuration", timings)
        layout.create()
        layout.add_layer(base, "/", created_by=f"debootstrap {rootfs.SUITE} + python3.11")
        layout.add_layer(venv, VENV, created_by="kubeinfer wheel in a virtualenv")
        layout.add_layer(collector, COLLECTOR_PATH, created_by="collector/builder-config.yaml")
        done()
    _configure(layout, image)
    return layout


def build_collector(
    image: Image,
    *,
    base: pathlib.Path,
    collector: pathlib.Path,
    umoci_binary: pathlib.Path,
    output: pathlib.Path,
    timings: dict[str, float],
) -> umoci.Layout:
    """Layers: the static base (CA bundle, users, ``/tmp``), the collector binary."""
    layout = umoci.Layout(binary=umoci_binary, path=output / image.name, tag=image.tag)
    rootfs.remove_tree(layout.path)
    done = _step("collector: layers and configuration", timings)
    with tempfile.TemporaryDirectory(prefix=".static-", dir=output) as scratch:
        static = pathlib.Path(scratch)
        _static_base(base, static)
        layout.create()
        layout.add_layer(static, "/", created_by="CA bundle, nonroot user, /tmp")
        layout.add_layer(collector, COLLECTOR_PATH, created_by="collector/builder-config.yaml")
    done()
    _configure(layout, image)
    return layout


def _configure(layout: umoci.Layout, image: Image) -> None:
    labels = {**image.config.labels, "org.opencontainers.image.revision": source_revision()}
    layout.configure(dataclasses.replace(image.config, labels=labels), created=source_created())


# --- checks in the built images --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """One command run in an image's root filesystem and what it printed."""

    image: str
    command: str
    output: str


def _example_config() -> str:
    """The node agent configuration the operator renders for the example LogPolicy."""
    document = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    spec = log_policy_api.LogPolicySpec.model_validate(document["spec"])
    owner = children.Owner(
        document["apiVersion"],
        document["kind"],
        document["metadata"]["name"],
        document["metadata"]["namespace"],
        "image-check",
    )
    return log_collector.config_text(owner, spec)


#: Runs the operator's own LogPolicy validation (KUBEINFER_COLLECTOR, a scratch file in /tmp).
_VALIDATE = (
    "import asyncio, sys\n"
    "from kubeinfer.controllers import log_validation\n"
    "verdict = asyncio.run(log_validation.validate(open(sys.argv[1]).read(), sys.argv[1]))\n"
    "print('verdict:', 'no collector' if verdict is None else verdict.error or 'valid')\n"
)
#: The root filesystem refuses writes; /tmp (the Deployment's emptyDir) takes them.
_WRITES = (
    "import tempfile\n"
    "try:\n"
    "    open('/opt/kubeinfer/probe', 'w')\n"
    "except OSError as err:\n"
    "    print('root filesystem:', err.strerror)\n"
    "print('scratch directory:', tempfile.mkdtemp())\n"
)


def _run_checks(
    layout: umoci.Layout,
    image: Image,
    commands: Sequence[tuple[Sequence[str], str]],
    *,
    files: Mapping[str, pathlib.Path],
    extra_env: Mapping[str, str] | None = None,
) -> tuple[list[Check], int]:
    """Unpack ``layout``, run each ``(argv, expected text)`` in it; return checks and its size.

    Runs as the user and with the environment of the runtime configuration umoci derives
    from the image (what a container runtime would use), plus ``extra_env``.
    """
    checks = []
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=layout.path.parent) as scratch:
        bundle = pathlib.Path(scratch) / "bundle"
        try:
            process = layout.unpack(bundle)["process"]
            assert isinstance(process, dict)
            user = f"{process['user']['uid']}:{process['user']['gid']}"
            if user != image.config.user:
                raise ImageBuildError(f"{image.name} runs as {user}, not {image.config.user}")
            env = dict(item.split("=", 1) for item in process["env"]) | dict(extra_env or {})
            size = _tree_bytes(bundle / "rootfs")
            for argv, expected in commands:
                ran = rootfs.run_read_only(bundle / "rootfs", argv, user=user, env=env, files=files)
                shown = " ".join(argv)
                if ran.returncode != 0 or expected not in ran.output:
                    raise ImageBuildError(
                        f"in {image.name}: `{shown}` exited {ran.returncode}, expected "
                        f"{expected!r} in its output:\n{ran.output[-2000:]}"
                    )
                checks.append(Check(image.name, shown, ran.output or "(exit 0, no output)"))
                log.info("Checked in the image", extra={"image": image.name, "command": shown})
        finally:
            rootfs.remove_tree(bundle)
    return checks, size


def check_operator(
    layout: umoci.Layout, image: Image, config: pathlib.Path
) -> tuple[list[Check], int]:
    """Version, an offline render, and the operator validating a LogPolicy configuration."""
    kubeinfer_ = list(image.config.entrypoint)
    python = f"{VENV}/bin/python"
    broken = config.with_name("broken.yaml")
    broken.write_text(config.read_text(encoding="utf-8").replace("receivers:", "receiverz:", 1))
    broken.chmod(0o644)
    return _run_checks(
        layout,
        image,
        [
            ([*kubeinfer_, "version"], kubeinfer.__version__),
            ([*kubeinfer_, "render", "/tmp/logpolicy.yaml"], "kind: ConfigMap"),
            ([python, "-c", _WRITES], "root filesystem: Read-only file system"),
            ([python, "-c", _VALIDATE, "/tmp/collector.yaml"], "verdict: valid"),
            ([python, "-c", _VALIDATE, "/tmp/broken.yaml"], "invalid keys: receiverz"),
        ],
        files={"logpolicy.yaml": EXAMPLE_POLICY, "collector.yaml": config, "broken.yaml": broken},
    )


def check_collector(
    layout: umoci.Layout, image: Image, config: pathlib.Path
) -> tuple[list[Check], int]:
    """Version and ``validate`` of the configuration the operator renders for the example."""
    collector = list(image.config.entrypoint)
    return _run_checks(
        layout,
        image,
        [
            ([*collector, "--version"], image.tag),
            ([*collector, "validate", "--config=/tmp/collector.yaml"], ""),
        ],
        files={"collector.yaml": config},
        # The agent DaemonSet sets these; the configuration refers to them.
        extra_env={
            log_agent.HASH_KEY_ENV: "imagecheck",
            log_collector.NODE_NAME_ENV: "image-check",
            log_collector.POD_NAME_ENV: "image-check",
        },
    )


# --- entry point -----------------------------------------------------------------------------


def _tree_bytes(path: pathlib.Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for item in path.rglob("*"):
        stat = item.lstat()
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


@dataclasses.dataclass(frozen=True)
class Result:
    """The built layouts, the checks run in them, step timings and unpacked sizes (bytes)."""

    layouts: dict[str, umoci.Layout]
    checks: list[Check]
    timings: dict[str, float]
    rootfs_bytes: dict[str, int]


def build(names: Sequence[str], *, output: pathlib.Path = OUTPUT_DIR, check: bool = True) -> Result:
    """Build the named images (``operator``, ``collector``); run their checks unless told not to."""
    rootfs.require_root()
    output.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    done = _step("umoci", timings)
    umoci_binary = umoci.ensure_umoci()
    done()
    done = _step("debian base", timings)
    base = rootfs.ensure_base()
    done()
    done = _step("collector binary", timings)
    collector = otelcol.ensure_collector()
    done()
    images = {"operator": operator_image(), "collector": collector_image()}
    builders = {"operator": build_operator, "collector": build_collector}
    layouts = {
        name: builders[name](
            images[name],
            base=base,
            collector=collector,
            umoci_binary=umoci_binary,
            output=output,
            timings=timings,
        )
        for name in names
    }
    checks: list[Check] = []
    rootfs_sizes: dict[str, int] = {}
    if check:
        with tempfile.TemporaryDirectory(prefix=".check-", dir=output) as scratch:
            config = pathlib.Path(scratch) / "collector.yaml"
            config.write_text(_example_config(), encoding="utf-8")
            config.chmod(0o644)
            done = _step("checks", timings)
            checkers = {"operator": check_operator, "collector": check_collector}
            for name, layout in layouts.items():
                found, rootfs_sizes[name] = checkers[name](layout, images[name], config)
                checks += found
            done()
    return Result(layouts=layouts, checks=checks, timings=timings, rootfs_bytes=rootfs_sizes)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: build, check, print where the layouts are and how big they are."""
    parser = argparse.ArgumentParser(prog="python -m images.build", description=__doc__)
    parser.add_argument("images", nargs="*", help="operator, collector (default: both)")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT_DIR)
    parser.add_argument("--no-check", action="store_true", help="skip the checks in the images")
    args = parser.parse_args(argv)
    logfmt.setup()
    names = args.images or ["operator", "collector"]
    unknown = sorted(set(names) - {"operator", "collector"})
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}; choose operator and/or collector")
    started = time.monotonic()
    try:
        result = build(names, output=args.output, check=not args.no_check)
    except (
        ImageBuildError,
        rootfs.RootfsError,
        umoci.UmociError,
        otelcol.OtelcolError,
        gomodules.GoToolError,
    ) as err:
        log.error("Image build failed", extra={"error": str(err)})
        return 1
    for check in result.checks:
        print(f"[{check.image}] $ {check.command}\n{check.output}\n")
    for name, layout in result.layouts.items():
        sizes = layout.blobs()
        unpacked = result.rootfs_bytes.get(name)
        print(
            f"{name}: oci:{layout.ref} layers={sizes['layers']} "
            f"compressed={sizes['compressed_bytes'] / 2**20:.1f}MiB"
            + (f" unpacked={unpacked / 2**20:.1f}MiB" if unpacked else "")
        )
    print("steps: " + ", ".join(f"{k}={v}s" for k, v in result.timings.items()))
    print(f"total: {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
