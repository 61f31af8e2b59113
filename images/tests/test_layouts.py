"""The OCI layouts ``make image`` wrote: configuration, contents and a run of each image.

``make image`` runs this module after building; ``make test`` does not collect it (it lives
beside the image tooling, not under ``tests/`` or ``e2e/``), since building the images takes
minutes and root. It reads the
layouts in ``build/images/`` rather than building them again: the build itself already ran
each image's commands (``images.build``); this checks what a registry and a kubelet would see.
"""

from __future__ import annotations

import pathlib
import stat
from collections.abc import Iterator

import pytest

from images import build, rootfs, umoci

IMAGES = {"operator": build.operator_image(), "collector": build.collector_image()}


def _layout(name: str) -> umoci.Layout:
    image = IMAGES[name]
    layout = umoci.Layout(
        binary=umoci.ensure_umoci(), path=build.OUTPUT_DIR / image.name, tag=image.tag
    )
    if not (layout.path / "index.json").is_file():
        pytest.fail(f"no layout at {layout.path}; run `make image` (python -m images.build) first")
    return layout


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, pathlib.Path]]:
    """Both images unpacked once: name -> root filesystem."""
    roots: dict[str, pathlib.Path] = {}
    bundles = []
    try:
        for name in IMAGES:
            bundle = tmp_path_factory.mktemp(name) / "bundle"
            bundles.append(bundle)
            _layout(name).unpack(bundle)
            roots[name] = bundle / "rootfs"
        yield roots
    finally:
        for bundle in bundles:
            rootfs.remove_tree(bundle)


@pytest.mark.parametrize("name", IMAGES)
def test_the_image_configuration_is_the_declared_one(name: str) -> None:
    image = IMAGES[name]
    layout = _layout(name)
    config = layout.image_config()
    assert config["config"]["User"] == image.config.user == "65532:65532"
    assert config["config"]["Entrypoint"] == list(image.config.entrypoint)
    assert (config["config"].get("Cmd") or []) == list(image.config.cmd)
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env.items() >= image.config.env.items()
    labels = config["config"]["Labels"]
    revision = labels["org.opencontainers.image.revision"]
    assert revision.startswith(build.source_revision()[:40]), f"built from {revision}; re-run"
    assert labels.items() >= image.config.labels.items()
    assert config["os"] == "linux"
    layers = layout.manifest()["layers"]
    assert {layer["mediaType"] for layer in layers} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    assert len(layers) == {"operator": 3, "collector": 2}[name]


@pytest.mark.parametrize("name", IMAGES)
def test_nothing_in_the_image_is_the_users_or_world_writable(
    name: str, unpacked: dict[str, pathlib.Path]
) -> None:
    root = unpacked[name]
    home = root / "home" / rootfs.NONROOT_NAME  # distroless's own, empty
    for path in root.rglob("*"):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or path == root / "tmp" or path == home:
            continue
        assert info.st_uid == 0, f"{path.relative_to(root)} is owned by uid {info.st_uid}"
        shared_tmp = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX  # /var/tmp
        assert shared_tmp or not info.st_mode & stat.S_IWOTH, (
            f"{path.relative_to(root)} is world-writable"
        )
    assert not (root / "etc" / "resolv.conf").exists()
    assert not (root / "etc" / "hostname").exists()


def test_the_operator_image_holds_kubeinfer_without_pip_and_the_collector(
    unpacked: dict[str, pathlib.Path],
) -> None:
    root = unpacked["operator"]
    site = root / "opt" / "kubeinfer" / "lib" / "python3.11" / "site-packages"
    assert (site / "kubeinfer").is_dir()
    assert not list(site.glob("pip*")), "the virtualenv carries no installer"
    collector = root / build.COLLECTOR_PATH.lstrip("/")
    assert collector.stat().st_mode & stat.S_IXOTH
    passwd = (root / "etc" / "passwd").read_text(encoding="utf-8")
    assert f"{rootfs.NONROOT_NAME}:x:{rootfs.NONROOT_UID}:{rootfs.NONROOT_UID}:" in passwd


def test_the_collector_image_holds_the_binary_certificates_and_users_only(
    unpacked: dict[str, pathlib.Path],
) -> None:
    root = unpacked["collector"]
    assert sorted(p.name for p in root.iterdir()) == ["etc", "home", "tmp", "usr"]
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "etc/group",
        "etc/nsswitch.conf",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
        build.COLLECTOR_PATH.lstrip("/"),
    ]
    assert b"BEGIN CERTIFICATE" in (root / "etc/ssl/certs/ca-certificates.crt").read_bytes()


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("operator", ["version"], build.operator_image().tag),
        ("collector", ["--version"], "0.149.0"),
    ],
)
def test_the_entrypoint_runs_read_only_as_nonroot(
    name: str, args: list[str], expected: str, unpacked: dict[str, pathlib.Path]
) -> None:
    image = IMAGES[name]
    ran = rootfs.run_read_only(
        unpacked[name],
        [*image.config.entrypoint, *args],
        user=image.config.user,
        env=dict(image.config.env),
    )
    assert ran.returncode == 0, ran.output
    assert expected in ran.output
