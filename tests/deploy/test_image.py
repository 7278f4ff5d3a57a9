"""The operator image for real: deploy/Dockerfile built with podman on a Debian base made
locally (hack/image/base.sh, hack/image/build.sh), then run under a real OCI runtime the
way the Deployments run it — read-only root filesystem, a tmpfs on /tmp only (the pods'
emptyDir), no network, no capabilities — and its installed packages compared with the lock.

The static checks (the lock against pyproject.toml, the Dockerfile against the pods'
securityContext) need no image and run everywhere."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from xlinefed import __version__, install

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCK = ROOT / "deploy" / "requirements.lock"
PODMAN = str(ROOT / "hack" / "image" / "podman.sh")
UID = 65532

# What the pods' securityContext gives the operators (install.workloads.container_security):
# readOnlyRootFilesystem with an emptyDir on /tmp, all capabilities dropped, no privilege
# escalation. --read-only-tmpfs=false: podman would otherwise add tmpfs on /run and
# /var/tmp too, which the pods do not have.
HARDENED = [
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp",
    "--network",
    "none",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def _pins() -> dict[str, str]:
    """name -> version of every `name==version` in the lock."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_every_dependency_of_the_operators_extra() -> None:
    """Regenerate with hack/image/lock.sh when this fails after a pyproject.toml change."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["operators"],
        # The image builds the project without build isolation, from the lock.
        *project["build-system"]["requires"],
    ]
    pins = _pins()
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} is not in {LOCK.name}: run hack/image/lock.sh"
        assert spec.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {spec}: run hack/image/lock.sh"
        )
    # Every pin carries hashes: the Dockerfile installs with --require-hashes.
    assert LOCK.read_text().count("==") == len(pins)
    assert all(
        "--hash=sha256:" in block for block in re.split(r"\n(?=[A-Za-z])", LOCK.read_text())[1:]
    )


def test_dockerfile_matches_the_pods() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert "ARG BASE=python:3.11-slim" in lines
    assert "FROM ${BASE}" in lines
    assert 'ENTRYPOINT ["xlinefed"]' in lines
    # Everything it copies exists (the build context is the repository root).
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert f"USER {UID}:{UID}" in lines
    pod = install.member_manifests("m")
    (deployment,) = [d for d in pod if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == UID
    assert spec["containers"][0]["image"] == f"xlinefed/operator:{__version__}"


@pytest.fixture(scope="module")
def image() -> str:
    """The built image (hack/test.sh builds it before pytest; a no-op here when warm)."""
    done = subprocess.run(
        [str(ROOT / "hack" / "image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess:
    command = [PODMAN, "run", "--rm", *HARDENED]
    if entrypoint:
        command += ["--entrypoint", entrypoint]
    return subprocess.run(
        [*command, image, *args], capture_output=True, text=True, timeout=300, check=False
    )


def _inspect(image: str, template: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PODMAN, "image", "inspect", "--format", template, image],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (done.args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


@pytest.mark.slow
def test_image_runs_the_cli_and_both_operators(image: str) -> None:
    # A real OCI runtime runs it (crun, or runc where crun refuses the host's cgroups).
    info = [PODMAN, "info", "--format", "{{.Host.OCIRuntime.Name}}"]
    runtime = subprocess.run(info, capture_output=True, text=True, timeout=60, check=True)
    assert runtime.stdout.strip() in {"crun", "runc"}
    # This tree's build (named by its key), also tagged as the manifests name it.
    assert image.startswith(f"localhost/xlinefed/operator:{__version__}-")
    assert _ok(_inspect(f"localhost/xlinefed/operator:{__version__}", "{{.Id}}"))
    assert _ok(_run(image, "--version")).strip() == f"xlinefed {__version__}"
    for operator in ("member-operator", "federation-operator"):
        out = _ok(_run(image, operator, "--help"))
        assert f"Usage: xlinefed {operator}" in out, out


@pytest.mark.slow
def test_image_runs_as_non_root_on_a_read_only_root(image: str) -> None:
    probe = """
import errno, os
print(os.getuid(), os.getgid())
for path in ("/probe", "/opt/xlinefed/probe", "/etc/probe"):
    try:
        open(path, "w")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
    else:
        print(path, "written")
with open("/tmp/probe", "w") as f:
    f.write("ok")
print("/tmp", "written")
"""
    lines = _ok(_run(image, "-c", probe, entrypoint="python3")).splitlines()
    # The image's own USER, not a --user of ours: the pods' runAsNonRoot checks it.
    assert lines[0] == f"{UID} {UID}"
    # The root filesystem refuses writes whoever owns the directory (EROFS, not EACCES).
    assert lines[1:4] == ["/probe EROFS", "/opt/xlinefed/probe EROFS", "/etc/probe EROFS"]
    assert lines[4] == "/tmp written"
    assert _ok(_inspect(image, "{{.Config.User}}")).strip() == f"{UID}:{UID}"


@pytest.mark.slow
def test_image_installs_exactly_the_lock(image: str) -> None:
    """Every installed distribution is the locked version, and nothing else is installed
    (bar pip, which comes with the base's venv module, and xlinefed itself): two builds of
    the same lock install the same packages."""
    out = _ok(_run(image, "freeze", "--all", entrypoint="pip"))
    installed = {}
    for line in out.splitlines():
        name, _, version = line.partition("==")
        installed[canonicalize_name(name.split(" @ ")[0])] = version
    assert installed.pop("xlinefed", None) is not None
    installed.pop("pip")
    assert installed == _pins()
    show = _ok(
        _run(image, "-c", "import xlinefed; print(xlinefed.__version__)", entrypoint="python3")
    )
    assert show.strip() == __version__
