"""The Dockerfiles and ``make image`` describe the same two images, and the manifests run them.

Cheap checks on text only (no image is built here): every base pinned by tag and digest, a
non-root numeric user, the collector where the operator Deployment looks for it, image names
equal to those the manifests and the planner use, the collector builder at the manifest's
release, and the daemonless build's configuration equal to the Dockerfiles' final stages.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import shlex

import pytest
import yaml

from e2e.harness import otelcol
from images import build, rootfs
from kubeinfer.planning.logs import collector as log_collector

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILES = {
    "operator": ROOT / "images" / "operator" / "Dockerfile",
    "collector": ROOT / "images" / "collector" / "Dockerfile",
}
PINNED = re.compile(r"^[a-z0-9./-]+(:[0-9]+)?/?[a-z0-9._/-]*:[\w.-]+@sha256:[0-9a-f]{64}$")


@dataclasses.dataclass
class Stage:
    """One ``FROM`` and the instructions after it: ``(INSTRUCTION, arguments)``."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def stages(path: pathlib.Path) -> list[Stage]:
    """The Dockerfile's stages, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base=words[0], name=name))
        else:
            assert found, f"{path}: {instruction} before the first FROM"
            found[-1].instructions.append((instruction.upper(), args.strip()))
    return found


def _key_values(args: str) -> dict[str, str]:
    """``ENV``/``LABEL`` arguments in their ``key=value ...`` form."""
    pairs = (word.split("=", 1) for word in shlex.split(args))
    return {key: value for key, value in pairs}


def _image(name: str) -> build.Image:
    return build.operator_image() if name == "operator" else build.collector_image()


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_base_is_pinned_by_tag_and_digest(name: str) -> None:
    for stage in stages(DOCKERFILES[name]):
        assert PINNED.match(stage.base), f"{name}: FROM {stage.base} is not image:tag@sha256:..."


def test_both_images_build_the_collector_with_the_same_go_image() -> None:
    def go_bases(name: str) -> set[str]:
        return {s.base for s in stages(DOCKERFILES[name]) if s.base.startswith("golang:")}

    assert go_bases("operator") == go_bases("collector")
    assert len(go_bases("operator")) == 1


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_final_stage_runs_as_the_numeric_nonroot_user(name: str) -> None:
    final = stages(DOCKERFILES[name])[-1]
    assert final.values("USER") == [f"{rootfs.NONROOT_UID}:{rootfs.NONROOT_UID}"]
    assert rootfs.NONROOT_UID != 0
    assert _image(name).config.user == final.values("USER")[0]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_collector_builder_runs_at_the_manifests_release(name: str) -> None:
    (builder,) = [s for s in stages(DOCKERFILES[name]) if s.name == "collector"]
    assert builder.values("ARG") == [f"OTELCOL_BUILDER_VERSION={otelcol.collector_version()}"]
    assert any("builder-config.yaml" in run for run in builder.values("RUN"))


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_daemonless_build_configures_what_the_dockerfile_does(name: str) -> None:
    final = stages(DOCKERFILES[name])[-1]
    config = _image(name).config
    assert json.loads(final.values("ENTRYPOINT")[0]) == list(config.entrypoint)
    assert [json.loads(c) for c in final.values("CMD")] == (
        [list(config.cmd)] if config.cmd else []
    )
    env: dict[str, str] = {}
    for args in final.values("ENV"):
        env |= _key_values(args)
    assert env.items() <= config.env.items()
    labels: dict[str, str] = {}
    for args in final.values("LABEL"):
        labels |= _key_values(args)
    assert labels.pop("org.opencontainers.image.revision") == "${REVISION}"
    assert labels == dict(config.labels)


def _containers(path: pathlib.Path) -> list[dict[str, object]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    containers: list[dict[str, object]] = document["spec"]["template"]["spec"]["containers"]
    return containers


def test_the_manifests_run_the_images_the_build_names() -> None:
    deployment = _containers(ROOT / "manifests" / "operator" / "deployment.yaml")
    daemonset = _containers(ROOT / "manifests" / "agent" / "daemonset.yaml")
    assert {c["image"] for c in deployment + daemonset} == {build.operator_image().reference}
    assert build.collector_image().reference == log_collector.COLLECTOR_IMAGE


def test_the_operator_image_has_the_collector_where_the_deployment_looks() -> None:
    (operator,) = _containers(ROOT / "manifests" / "operator" / "deployment.yaml")
    env = {e["name"]: e["value"] for e in operator["env"]}  # type: ignore[attr-defined]
    final = stages(DOCKERFILES["operator"])[-1]
    copies = [args.split() for args in final.values("COPY")]
    built = "/src/collector/build/otelcol-kubeinfer"
    assert ["--from=collector", built, env["KUBEINFER_COLLECTOR"]] in copies
    assert env["KUBEINFER_COLLECTOR"] == build.COLLECTOR_PATH


def test_a_read_only_operator_has_a_writable_tmp_for_logpolicy_validation() -> None:
    deployment = yaml.safe_load(
        (ROOT / "manifests" / "operator" / "deployment.yaml").read_text(encoding="utf-8")
    )
    pod = deployment["spec"]["template"]["spec"]
    (operator,) = pod["containers"]
    assert operator["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in operator.get("volumeMounts", [])}
    assert "/tmp" in mounts, "log_validation writes its scratch file under /tmp"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_build_context_keeps_what_the_dockerfiles_copy() -> None:
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for name, path in DOCKERFILES.items():
        for stage in stages(path):
            for args in stage.values("COPY"):
                words = args.split()
                if words[0].startswith("--from="):
                    continue
                for source in words[:-1]:
                    assert source.rstrip("/") in allowed, f"{name}: COPY {source} is ignored"
    assert set(build.WHEEL_SOURCES) <= allowed


DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    ("text", "mirror"),
    [
        (DEB822, "http://mirror.example/debian"),
        ("deb [arch=amd64] http://one.example/debian bookworm main\n", "http://one.example/debian"),
        ("deb http://one.example/debian-security bookworm-security main\n", None),
        ("Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n", None),
    ],
    ids=["deb822 sources", "one-line list", "only security", "only deb-src"],
)
def test_the_debian_mirror_is_the_one_apt_uses_for_the_suite(text: str, mirror: str | None) -> None:
    assert rootfs._mirror_in(text) == mirror


def test_without_an_apt_source_the_error_names_the_variable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(rootfs.MIRROR_ENV, raising=False)
    with pytest.raises(rootfs.RootfsError, match=rootfs.MIRROR_ENV):
        rootfs.debian_mirror((tmp_path,))
    (tmp_path / "debian.sources").write_text(DEB822, encoding="utf-8")
    assert rootfs.debian_mirror((tmp_path,)) == "http://mirror.example/debian"
    monkeypatch.setenv(rootfs.MIRROR_ENV, "http://override.example/debian")
    assert rootfs.debian_mirror((tmp_path,)) == "http://override.example/debian"
