"""The images' locks match pyproject.toml, and each image's extra declares what its code imports.

requirements/<image>.lock is what a Dockerfile installs (``--require-hashes --no-deps``), so a
lock that misses a requirement, pins a version pyproject.toml excludes or keeps a dependency
that was dropped breaks the image without any other test noticing. The import side walks the
code statically (importgraph): every third-party module an image's entry point imports must come
from a distribution its extra (or the base) names directly, not one that happens to arrive
through someone else's dependencies.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import importgraph
import lockfile
import pytest
from packaging import requirements, utils

LOCKS = lockfile.REPO / "requirements"
IMAGES = ["runner", "operator"]


def _graphs(image: str) -> list[importgraph.Graph]:
    """What an image's process imports: the runner's entry point; for the operator its console
    script (the CLI as importing it runs, before a command is chosen) and `bosun operator`'s
    main."""
    if image == "runner":
        return [importgraph.walk("bosun.runner.__main__")]
    if image == "operator":
        cli = importgraph.walk("bosun.cli", lazy=False)
        return [cli, importgraph.walk("bosun.controller.main")]
    # The base: the API models, the contract, and the CLI's access to the API server.
    base = ("bosun.api", "bosun.contract", "bosun.constants", "bosun.kube", "bosun.ops")
    return [importgraph.walk(*base)]


def _lock(name: str) -> dict[str, lockfile.Entry]:
    return lockfile.parse(LOCKS / f"{name}.lock")


def _declared(*extras: str) -> set[str]:
    return {utils.canonicalize_name(req.name) for req in lockfile.project_requirements(*extras)}


@pytest.mark.parametrize("name", [*IMAGES, "build"])
def test_every_entry_is_pinned_with_hashes(name: str) -> None:
    entries = _lock(name)
    assert entries, f"requirements/{name}.lock pins nothing"
    for entry in entries.values():
        assert entry.hashes, f"{entry.name} has no --hash: pip --require-hashes refuses the lock"
        for digest in entry.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (entry.name, digest)


@pytest.mark.parametrize("image", IMAGES)
def test_lock_satisfies_the_extra(image: str) -> None:
    entries = _lock(image)
    for req in lockfile.project_requirements(image):
        name = utils.canonicalize_name(req.name)
        assert name in entries, f"{req} is missing from requirements/{image}.lock: make lock"
        version = entries[name].version
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements/{image}.lock pins {name}=={version}, pyproject.toml asks {req}"
        )


@pytest.mark.parametrize("image", IMAGES)
def test_lock_holds_nothing_pyproject_dropped(image: str) -> None:
    entries = _lock(image)
    direct = {entry.name for entry in entries.values() if lockfile.DIRECT in entry.via}
    assert direct == _declared(image), f"requirements/{image}.lock is stale: make lock"
    for entry in entries.values():
        # Every pin is there because the project or another pin of the same lock asked for it.
        assert entry.via, f"{entry.name} is in requirements/{image}.lock for no reason"
        assert entry.via - {lockfile.DIRECT} <= entries.keys(), (entry.name, entry.via)


def test_build_lock_satisfies_the_build_system() -> None:
    entries = _lock("build")
    build = tomllib.loads((lockfile.REPO / "pyproject.toml").read_text())["build-system"]
    for text in build["requires"]:
        req = requirements.Requirement(text)
        name = utils.canonicalize_name(req.name)
        assert name in entries, f"{req} is missing from requirements/build.lock: make lock"
        assert req.specifier.contains(entries[name].version, prereleases=True), (req, entries[name])


def test_runner_lock_carries_no_operator_dependencies() -> None:
    entries = _lock("runner")
    for name in ("kopf", "prometheus-client", "kubernetes"):
        assert name not in entries, f"the runner image would carry {name}"


@pytest.mark.parametrize("image", IMAGES)
def test_no_image_carries_the_official_kubernetes_client(image: str) -> None:
    # Bosun's own API layer talks to the API server; the client is dev tooling only.
    assert "kubernetes" not in _lock(image)


def _distributions(module: str) -> set[str]:
    found = importlib.metadata.packages_distributions().get(module, [])
    assert found, f"no installed distribution provides {module!r}: pip install -e '.[dev]'"
    return {utils.canonicalize_name(name) for name in found}


@pytest.mark.parametrize("image", [*IMAGES, "base"])
def test_extra_declares_every_module_the_image_imports(image: str) -> None:
    declared = _declared() if image == "base" else _declared(image)
    missing: dict[str, list[str]] = {}
    for graph in _graphs(image):
        for module in sorted(graph.third_party):
            if not _distributions(module) & declared:
                missing[module] = sorted(graph.importers[module])
    assert not missing, f"imported but not declared for {image} (module: importers): {missing}"


def test_import_walk_finds_the_runners_known_dependencies() -> None:
    # The walk the test above trusts, on the real code: lazy imports (mcp is imported only by
    # the MCP transport) are found, an import guarded by ``except ImportError`` is optional.
    graph = importgraph.walk("bosun.runner.__main__")
    assert {"httpx", "httpx2", "mcp", "celpy", "jsonschema", "pydantic"} <= graph.third_party
    assert "opentelemetry" in graph.optional


def test_lock_command_targets_the_images_python() -> None:
    makefile = (lockfile.REPO / "Makefile").read_text()
    version = re.search(r"--python-version (\S+)", makefile)
    assert version and version[1] == lockfile.TARGET["python_version"]
    assert "--generate-hashes" in makefile
    # The Dockerfiles install wheels only, so the lock must pick versions that have one.
    assert "--only-binary :all:" in makefile
    assert "x86_64-manylinux" in makefile
    for dockerfile in (lockfile.REPO / "Dockerfile", lockfile.REPO / "runner-image" / "Dockerfile"):
        pattern = r"^ARG (?:BASE|RUNTIME)_IMAGE=python:(\d+\.\d+)-"
        bases = re.findall(pattern, dockerfile.read_text(), re.MULTILINE)
        assert bases and set(bases) == {version[1]}, dockerfile
