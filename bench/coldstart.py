"""The runner's cold start: from its process starting to its first request to the model.

    .venv/bin/python bench/coldstart.py [--starts 20]

Each start is a real runner process (``python -m bosun.runner``, as a runner pod's container
runs it) for a fresh Run, set up as the operator sets one up: the Run's ServiceAccount, Role,
RoleBinding and Lease from the operator's own builders, and the in-cluster credentials a pod
gets (a bound token from the TokenRequest API and the cluster's CA, in the folder named by
``BOSUN_SERVICEACCOUNT_DIR``). The Agent's model is an OpenAI-compatible HTTP server on loopback.
Python starts, the runner imports, acquires its Lease, opens its journal, reads its Run, Agent,
Tools and Policies, decides the model call and sends it; one sample is the time from the
``Popen`` to the model server receiving that request. One start before the counted ones warms
the API server's caches for the namespace (its first requests are slow whoever sends them).

Two interpreters: the runner image's packages (a virtualenv made from
``requirements/runner.lock``, cached by the lock's hash, with Bosun's source on ``PYTHONPATH``),
and this checkout's ``.venv``, which also carries the dev tools. And the real thing
(``measure_pods``): a runner pod of the built runner image (``make images``), the pod the
operator's Job template makes, created through the API server; the node emulator binds it,
writes its token and runs it inside the image's root filesystem. One sample is from the pod's
POST to the model server receiving the runner's first request. Runs on a private local control
plane (started here) or on the one ``report.py`` passes in. Prints median and p99; asserts
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Any

import _common

from bosun import constants, contract, kube
from bosun.controller import builders
from bosun.controller import settings as settings_mod
from bosun.dev import imagebuild, provision, testing
from bosun.dev.servers import base, models

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "runner.lock"


class _Stopwatch(models.OpenAIServer):
    """An OpenAI-compatible model that notes when each request arrived (the starts run one
    after another, so the first request after a start is that runner's)."""

    def __init__(self) -> None:
        super().__init__([{"reply": "done"}])
        self.times: list[float] = []
        self.noted = threading.Condition()

    def handle(self, request: base.Request) -> base.Reply:
        with self.noted:
            self.times.append(time.monotonic())
            self.noted.notify_all()
        return super().handle(request)


def runner_image_python() -> pathlib.Path:
    """A Python with exactly the runner image's locked packages (made once per lock)."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    folder = provision.cache_root() / "bench" / f"runner-venv-{digest}"
    python = folder / "bin" / "python"
    if not (folder / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps"]
        subprocess.run([*pip, "--only-binary=:all:", "-r", str(LOCK)], check=True)
        # As the image's Dockerfile does: bytecode is compiled when the image is built.
        subprocess.run([str(python), "-m", "compileall", "-q", str(folder / "lib")], check=True)
        (folder / ".complete").touch()
    return python


def _agent(rest: kube.Rest, namespace: str, server: _Stopwatch) -> None:
    """Agent ``cold``: an OpenAI-compatible model, ``server``."""
    rest.create(
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Agent",
            "metadata": {"name": "cold", "namespace": namespace},
            "spec": {
                "model": {"provider": "openai", "name": "m", "baseURL": f"{server.url}/v1"},
                "instructions": "Answer.",
            },
        }
    )


def _figures(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "p99": _common.percentile(samples, 99),
        "min": min(samples),
        "starts": float(len(samples)),
    }


def _pod_credentials(rest: kube.Rest, run: dict[str, Any], folder: pathlib.Path) -> None:
    """What the kubelet mounts for a pod of the Run's ServiceAccount: token, CA, namespace."""
    meta = run["metadata"]
    account = contract.runner_account_name(meta["name"])
    path = kube.object_path("v1", "serviceaccounts", meta["namespace"], account) + "/token"
    review = rest.request("POST", path, {"spec": {"expirationSeconds": 3600}})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(review["status"]["token"])
    (folder / "ca.crt").write_text(rest.credentials.ca_pem or "")
    (folder / "namespace").write_text(meta["namespace"])


def _prepare(
    rest: kube.Rest, namespace: str, name: str, folder: pathlib.Path, source: pathlib.Path
) -> dict[str, str]:
    """Create Run ``name`` and what the operator creates for its first attempt; return the
    runner container's environment."""
    run = rest.create(
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Run",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"agentRef": {"name": "cold"}, "input": "go"},
        }
    )
    assert run is not None
    for child in (
        builders.service_account(run),
        builders.role(run),
        builders.role_binding(run),
        builders.lease(run, contract.LEASE_DURATION_SECONDS),
    ):
        rest.create(child)
    sa_dir = folder / name
    _pod_credentials(rest, run, sa_dir)
    server = urllib.parse.urlsplit(rest.credentials.server)
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(source),
        "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(server.port or 443),
        constants.EMULATOR_SERVICEACCOUNT_DIR_ENV: str(sa_dir),
        contract.ENV_RUN_NAME: name,
        contract.ENV_RUN_NAMESPACE: namespace,
        contract.ENV_RUN_UID: run["metadata"]["uid"],
        contract.ENV_ATTEMPT: "1",
        contract.ENV_POD_NAME: f"{name}-pod",
        contract.ENV_LEASE_NAME: contract.lease_name(name),
        contract.ENV_MODEL_API_KEY: "sk-bench",
    }


def _start(python: pathlib.Path, env: dict[str, str], server: _Stopwatch, log_file: Any) -> float:
    """Start one runner; seconds until its first model request arrived."""
    log_file.seek(0)
    log_file.truncate()
    before = len(server.times)
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(python), "-m", "bosun.runner"], env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    try:
        with server.noted:
            server.noted.wait_for(lambda: len(server.times) > before, timeout=60)
    finally:
        proc.wait(timeout=60)
    if len(server.times) <= before:
        log_file.seek(0)
        output = log_file.read().decode(errors="replace")[-3000:]
        raise RuntimeError(f"the runner sent no model request (exit {proc.returncode}):\n{output}")
    return server.times[before] - started


def measure(
    cluster: _common.Cluster,
    starts: int = 20,
    python: pathlib.Path | None = None,
    source: pathlib.Path = ROOT / "operator",
) -> dict[str, float]:
    """Seconds from runner process start to its first model request: median, p99, min.
    ``python`` defaults to the runner image's packages, ``source`` to this checkout's."""
    rest = cluster.rest
    interpreter = python or runner_image_python()
    label = hashlib.sha256(f"{interpreter} {source}".encode()).hexdigest()[:6]
    namespace = _common.create_namespace(rest, f"bench-coldstart-{label}")
    server = _Stopwatch()
    server.start()
    samples: list[float] = []
    try:
        _agent(rest, namespace, server)
        with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as log_file:
            # Start 0 warms the API server's caches for the namespace and is not counted.
            for index in range(starts + 1):
                name = f"cold-{index:03d}"
                env = _prepare(rest, namespace, name, pathlib.Path(folder), source)
                took = _start(interpreter, env, server, log_file)
                if index:
                    samples.append(took)
    finally:
        server.stop()
    return _figures(samples)


def _pod(rest: kube.Rest, run_name: str, namespace: str, image: str) -> dict[str, Any]:
    """The runner pod of attempt 1, as the operator's Job template has it, on ``image``."""
    run = rest.get(constants.API_VERSION, "runs", namespace, run_name)
    agent = rest.get(constants.API_VERSION, "agents", namespace, "cold")
    assert run is not None and agent is not None
    job = builders.job(run, agent, [], 1, settings_mod.Settings(runner_image=image))
    template = job["spec"]["template"]
    template["spec"]["containers"][0]["env"].append(
        {"name": contract.ENV_MODEL_API_KEY, "value": "sk-bench"}
    )
    meta = {"name": f"{run_name}-pod", "namespace": namespace, **template.get("metadata", {})}
    meta.pop("generateName", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}


def _pod_phase(rest: kube.Rest, namespace: str, name: str) -> str:
    pod = rest.get("v1", "pods", namespace, name) or {}
    return str((pod.get("status") or {}).get("phase", ""))


def measure_pods(cluster: _common.Cluster, image: str, starts: int = 20) -> dict[str, float]:
    """Seconds from a runner pod's creation (of the built ``image``) to its first model
    request: median, p99, min."""
    rest = cluster.rest
    namespace = _common.create_namespace(rest, "bench-podstart")
    server = _Stopwatch()
    server.start()
    samples: list[float] = []
    try:
        _agent(rest, namespace, server)
        with tempfile.TemporaryDirectory() as folder:
            for index in range(starts + 1):
                name = f"pod-{index:03d}"
                _prepare(rest, namespace, name, pathlib.Path(folder), ROOT / "operator")
                pod = _pod(rest, name, namespace, image)
                before = len(server.times)
                started = time.monotonic()
                rest.create(pod)
                with server.noted:
                    server.noted.wait_for(lambda b=before: len(server.times) > b, timeout=120)
                if len(server.times) <= before:
                    raise RuntimeError(
                        f"runner pod {name} sent no model request; its log:\n"
                        + cluster.handle.explain_namespace(namespace)[-3000:]
                    )
                if index:
                    samples.append(server.times[before] - started)
                testing.until(
                    lambda n=pod["metadata"]["name"]: (
                        _pod_phase(rest, namespace, n) in ("Succeeded", "Failed")
                    ),
                    120,
                    what=f"runner pod {name} to end",
                )
    finally:
        server.stop()
    return _figures(samples)


def describe(figures: dict[str, float]) -> str:
    return (
        f"median {figures['median'] * 1e3:.0f} ms, p99 {figures['p99'] * 1e3:.0f} ms,"
        f" min {figures['min'] * 1e3:.0f} ms over {int(figures['starts'])} starts"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument(
        "--compare",
        type=pathlib.Path,
        help="another checkout's operator/ folder, started with this .venv (e.g. an old commit)",
    )
    args = parser.parse_args(argv)
    runner = next(b for b in imagebuild.ensure(["bosun-runner"]))
    with _common.local_control_plane() as cluster:
        pods = measure_pods(cluster, runner.reference, args.starts)
        image = measure(cluster, args.starts)
        dev = measure(cluster, args.starts, pathlib.Path(sys.executable))
        other = (
            measure(cluster, args.starts, pathlib.Path(sys.executable), args.compare)
            if args.compare
            else None
        )
    size = runner.image.size_bytes / 1e6
    print(f"runner pod start, {runner.reference} ({size:.0f} MB): {describe(pods)}")
    print(f"runner cold start, runner image packages: {describe(image)}")
    print(f"runner cold start, dev .venv:             {describe(dev)}")
    if other is not None:
        print(f"runner cold start, {args.compare} on .venv: {describe(other)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
