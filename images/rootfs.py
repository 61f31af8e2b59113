"""Root filesystems for ``make image``: a cached Debian base from debootstrap, and running in one.

Owns: finding the Debian mirror this machine's apt already uses, installing ``debootstrap``
from Debian's packages when missing, building and caching the base root filesystem (Debian
bookworm ``minbase`` with ``python3.11`` and ``ca-certificates``, the ``nonroot`` user 65532;
documentation, apt lists and caches, device nodes and the build machine's resolver and host
name removed),
and running a command in a root filesystem: as root to set it up, or read-only, as the image's
user, with a fresh ``/tmp``, the way a pod with ``readOnlyRootFilesystem`` runs it.
Must not: know what an image holds beyond its base (``images.build`` decides).

Everything here needs root (debootstrap, chroot, mounts). Mounts are made only inside a private
mount namespace (``unshare --mount``), so they vanish with the command and never touch the host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence

from e2e.harness import toolchain

log = logging.getLogger("images.rootfs")

SUITE = "bookworm"
PACKAGES = ("python3.11", "ca-certificates")
NONROOT_UID = 65532
NONROOT_NAME = "nonroot"
MIRROR_ENV = "KUBEINFER_DEBIAN_MIRROR"
#: Bumped whenever the base's recipe below changes, so a cached base is rebuilt.
RECIPE = "4"
# What debian:bookworm-slim (and so python:3.11-slim-bookworm) leaves out, plus apt's state.
_SLIMMED = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "var/log",
    "dev",  # device nodes debootstrap made; a container runtime mounts its own /dev
)
# Copied in from the build machine by debootstrap; a container runtime provides its own.
_MACHINE_FILES = ("etc/resolv.conf", "etc/hostname")
_SOURCES_DIRS = (pathlib.Path("/etc/apt/sources.list.d"), pathlib.Path("/etc/apt"))


class RootfsError(RuntimeError):
    """A root filesystem could not be built, or a command in one failed."""


def require_root() -> None:
    """Raise naming why, unless this process may chroot and mount."""
    if os.geteuid() != 0:
        raise RootfsError(
            "make image needs root (debootstrap, chroot and a private mount namespace); "
            "run it as root, or build images/*/Dockerfile with a container builder"
        )


def debian_mirror(sources_dirs: Sequence[pathlib.Path] = _SOURCES_DIRS) -> str:
    """The Debian archive this machine's apt uses for ``SUITE`` (``KUBEINFER_DEBIAN_MIRROR`` wins)."""
    configured = os.environ.get(MIRROR_ENV)
    if configured:
        return configured
    for directory in sources_dirs:
        for path in sorted(directory.glob("*.sources")) + sorted(directory.glob("*.list")):
            mirror = _mirror_in(path.read_text(encoding="utf-8", errors="replace"))
            if mirror:
                return mirror
    raise RootfsError(
        f"no apt source for Debian {SUITE} found under /etc/apt; set {MIRROR_ENV} to a Debian mirror"
    )


def _mirror_in(text: str) -> str | None:
    """The first URI serving ``SUITE`` itself in a deb822 ``.sources`` or one-line ``.list`` text."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(
            (key.strip().lower(), value.strip())
            for key, sep, value in (line.partition(":") for line in stanza.splitlines())
            if sep and not key.startswith("#")
        )
        if "deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split():
            return fields.get("uris", "").split()[0] if fields.get("uris") else None
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
            return words[1]
    return None


def _ensure_debootstrap() -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RootfsError("debootstrap is not installed and there is no apt-get to install it")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"],
    ):
        _run(argv)
    found = shutil.which("debootstrap")
    if found is None:
        raise RootfsError("apt-get installed debootstrap but it is not on PATH")
    return found


def _run(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 1800
) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, check=False, env=env, timeout=timeout
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise RootfsError(f"{' '.join(argv[:4])} failed (exit {result.returncode}):\n{output}")
    return result.stdout


def cache_dir() -> pathlib.Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/images``."""
    return toolchain.cache_dir().parent.parent / "images"


def base_key(mirror: str) -> str:
    """What the cached base was built from; a different key rebuilds it."""
    text = f"{SUITE} minbase {','.join(PACKAGES)} uid {NONROOT_UID} recipe {RECIPE} {mirror}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_base() -> pathlib.Path:
    """The cached base root filesystem, built by debootstrap when missing or stale."""
    require_root()
    mirror = debian_mirror()
    directory = cache_dir() / f"base-{SUITE}"
    target = directory / "rootfs"
    key_file = directory / "rootfs.key"
    key = base_key(mirror)
    with toolchain._locked(directory):
        if target.is_dir() and key_file.is_file() and key_file.read_text() == key:
            return target
        started = time.monotonic()
        scratch = pathlib.Path(tempfile.mkdtemp(prefix=".rootfs-", dir=directory))
        try:
            _debootstrap(scratch / "rootfs", mirror)
            _add_nonroot(scratch / "rootfs")
            _slim(scratch / "rootfs")
            key_file.unlink(missing_ok=True)
            if target.exists():
                remove_tree(target)
            (scratch / "rootfs").rename(target)
        finally:
            remove_tree(scratch)
        key_file.write_text(key, encoding="utf-8")
        log.info(
            "Built the Debian base",
            extra={"suite": SUITE, "elapsed_s": round(time.monotonic() - started, 1)},
        )
    return target


def _debootstrap(target: pathlib.Path, mirror: str) -> None:
    argv = [
        _ensure_debootstrap(),
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
        mirror,
    ]
    log.info("Running debootstrap", extra={"suite": SUITE, "packages": ",".join(PACKAGES)})
    try:
        _run(argv)
    finally:
        _unmount_below(target)  # debootstrap mounts /proc and /sys; a failed run can leave them


def _add_nonroot(root: pathlib.Path) -> None:
    """The same user and group the Dockerfile's final stage adds (uid and gid 65532)."""
    uid = str(NONROOT_UID)
    chroot(root, ["groupadd", "--gid", uid, NONROOT_NAME])
    chroot(
        root,
        [
            *("useradd", "--uid", uid, "--gid", uid, "--no-create-home"),
            *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", NONROOT_NAME),
        ],
    )


def _slim(root: pathlib.Path) -> None:
    for relative in _SLIMMED:
        path = root / relative
        if path.is_dir():
            for child in path.iterdir():
                remove_tree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        elif path.exists():
            path.unlink()
    doc = root / "usr" / "share" / "doc"
    for path in sorted(doc.rglob("*"), reverse=True):  # keep each package's copyright file
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.name != "copyright":
            path.unlink()
    for relative in _MACHINE_FILES:
        (root / relative).unlink(missing_ok=True)


def _mounts_below(path: pathlib.Path) -> list[str]:
    prefix = str(path.resolve())
    mounts = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _unmount_below(path: pathlib.Path) -> None:
    for point in _mounts_below(path):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def remove_tree(path: pathlib.Path) -> None:
    """``rm -r`` that refuses to descend into anything still mounted below ``path``."""
    if not path.exists():
        return
    if _mounts_below(path):
        _unmount_below(path)
        if _mounts_below(path):
            raise RootfsError(f"{path} still has mounts below it; not removing it")
    shutil.rmtree(path)


def copy_tree(source: pathlib.Path, target: pathlib.Path) -> None:
    """``cp -a``: owners, modes, links, device nodes and hard links kept."""
    _run(["cp", "-a", "--", str(source), str(target)])


_SETUP_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
#: What a container runtime puts in a container's /dev (a tmpfs), bound from the host's.
_DEVICES = ("null", "zero", "full", "random", "urandom")


@dataclasses.dataclass(frozen=True)
class Ran:
    """What a command printed (stdout and stderr together) and its exit status."""

    output: str
    returncode: int


def chroot(root: pathlib.Path, argv: Sequence[str]) -> str:
    """Run ``argv`` as root in ``root`` (writable) with a clean environment: set-up steps."""
    ran = _in_namespace(root, argv, user="0:0", env=_SETUP_ENV, read_only=False, timeout=1800)
    if ran.returncode != 0:
        raise RootfsError(
            f"{' '.join(argv[:4])} failed (exit {ran.returncode}):\n{ran.output[-4000:]}"
        )
    return ran.output


def run_read_only(
    root: pathlib.Path,
    argv: Sequence[str],
    *,
    user: str,
    env: Mapping[str, str],
    files: Mapping[str, pathlib.Path] | None = None,
    timeout: float = 120,
) -> Ran:
    """Run ``argv`` in ``root`` mounted read-only, as ``user``, with a fresh tmpfs on ``/tmp``.

    ``files`` maps names to host files copied into that ``/tmp`` first (inputs for the
    command). Like a container with ``readOnlyRootFilesystem`` and an ``emptyDir`` at ``/tmp``:
    nothing the command does can change ``root``. ``env`` is passed on as it is.
    """
    return _in_namespace(
        root, argv, user=user, env=env, read_only=True, files=files or {}, timeout=timeout
    )


def _in_namespace(
    root: pathlib.Path,
    argv: Sequence[str],
    *,
    user: str,
    env: Mapping[str, str],
    read_only: bool,
    files: Mapping[str, pathlib.Path] | None = None,
    timeout: float,
) -> Ran:
    """``chroot --userspec`` in a private mount namespace with /proc, /dev and (read-only) /tmp."""
    require_root()
    names = ("unshare", "mount", "chroot", "cp", "chmod", "touch")
    tools = {name: shutil.which(name) for name in names}
    missing = sorted(name for name, path in tools.items() if path is None)
    if missing:
        raise RootfsError(f"{', '.join(missing)} not installed (util-linux, coreutils)")
    mount, chroot_, cp, chmod, touch = (shlex.quote(str(tools[n])) for n in names[1:])
    top = root.resolve()
    quoted = shlex.quote(str(top))
    script = ["set -e", f"{mount} --bind {quoted} {quoted}"]
    if read_only:
        script.append(f"{mount} -o remount,bind,ro {quoted}")
        script.append(
            f"{mount} -t tmpfs -o mode=1777,size=64m tmpfs {shlex.quote(str(top / 'tmp'))}"
        )
    if (top / "proc").is_dir():
        script.append(f"{mount} -t proc proc {shlex.quote(str(top / 'proc'))}")
    if (top / "dev").is_dir():
        dev = top / "dev"
        script.append(f"{mount} -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(str(dev))}")
        for device in _DEVICES:
            node = shlex.quote(str(dev / device))
            script.append(f"{touch} {node} && {mount} --bind /dev/{device} {node}")
    for name, source in (files or {}).items():
        target = shlex.quote(str(top / "tmp" / name))
        script.append(f"{cp} -- {shlex.quote(str(source))} {target} && {chmod} 0644 {target}")
    command = " ".join(map(shlex.quote, argv))
    script.append(f"exec {chroot_} --userspec={shlex.quote(user)} {quoted} {command}")
    unshare = (str(tools["unshare"]), "--mount", "--propagation", "private")
    result = subprocess.run(
        [*unshare, "/bin/sh", "-c", "\n".join(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=dict(env),  # chroot passes it on to argv unchanged
    )
    return Ran(output=(result.stdout + result.stderr).strip(), returncode=result.returncode)
