"""Play operator for runner integration tests: objects, least-privilege RBAC, Lease, processes.

``Harness`` creates what the operator would for a Run (the ServiceAccount bound to a Role with
exactly ``contract.runner_rules(run)``, the Lease with an empty holder), starts
``python -m bosun.runner`` as a subprocess authenticated with that ServiceAccount's token,
and reads back the journal, status, Events and the runner's JSON log lines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import yaml
from kubernetes import client

from bosun import constants, contract, kube
from bosun.dev import testing
from bosun.runner import journal_chunks, kubeapi

GROUP, VERSION = constants.GROUP, constants.VERSION
PLURALS = {
    "Agent": "agents",
    "Tool": "tools",
    "Policy": "policies",
    "Run": "runs",
    "Approval": "approvals",
    "RunJournal": "runjournals",
}


@dataclasses.dataclass
class RunnerProcess:
    proc: subprocess.Popen[bytes]
    log_path: pathlib.Path
    pod: str

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for line in self.text().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict):
                parsed.append(item)
        return parsed

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def terminate(self) -> None:
        """What the kubelet does first when the pod is deleted."""
        os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


class Harness:
    def __init__(
        self, control_plane: testing.ControlPlaneHandle, namespace: str, folder: pathlib.Path
    ) -> None:
        self.cp = control_plane
        self.namespace = namespace
        self.folder = folder
        self.api = control_plane.api_client()
        self.rest = kube.connect(control_plane.kubeconfig)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.processes: list[RunnerProcess] = []
        self.uids: dict[str, str] = {}

    # --- objects -------------------------------------------------------------------------------

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        manifest = {"apiVersion": constants.API_VERSION, **manifest}
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[manifest["kind"]], manifest
        )
        return created

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name
        )
        return found

    def list(self, kind: str) -> list[dict[str, Any]]:
        found: dict[str, Any] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind]
        )
        items: list[dict[str, Any]] = found["items"]
        return items

    def delete(self, kind: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name
        )

    def agent(self, name: str, model: dict[str, Any], tools: list[str], **spec: Any) -> None:
        self.create(
            {
                "kind": "Agent",
                "metadata": {"name": name, "labels": spec.pop("labels", {})},
                "spec": {"model": model, "tools": tools, **spec},
            }
        )

    def http_tool(
        self, name: str, url: str, schema: dict[str, Any] | None = None, **spec: Any
    ) -> None:
        http = {"url": url, **spec.pop("http", {})}
        self.create(
            {
                "kind": "Tool",
                "metadata": {"name": name},
                "spec": {
                    "description": f"the {name} tool",
                    "http": http,
                    **({"inputSchema": schema} if schema else {}),
                    **spec,
                },
            }
        )

    def mcp_tool(self, name: str, url: str, tool_name: str, schema: dict[str, Any]) -> None:
        self.create(
            {
                "kind": "Tool",
                "metadata": {"name": name},
                "spec": {
                    "description": f"the {name} tool",
                    "inputSchema": schema,
                    "mcp": {"url": url, "toolName": tool_name},
                },
            }
        )

    def policy(self, name: str, rules: list[dict[str, Any]], **spec: Any) -> None:
        self.create(
            {"kind": "Policy", "metadata": {"name": name}, "spec": {"rules": rules, **spec}}
        )

    def allow_all(self) -> None:
        self.policy("allow-all", [{"name": "everything", "tools": ["*"], "action": "Allow"}])

    # --- what the operator would do for one Run ---------------------------------------------------

    def run(
        self,
        name: str,
        agent: str,
        text: str = "do the task",
        lease_seconds: int = contract.LEASE_DURATION_SECONDS,
    ) -> str:
        created = self.create(
            {
                "kind": "Run",
                "metadata": {"name": name},
                "spec": {"agentRef": {"name": agent}, "input": text},
            }
        )
        uid = created["metadata"]["uid"]
        self.uids[name] = uid
        account = contract.runner_account_name(name)
        self.core.create_namespaced_service_account(self.namespace, {"metadata": {"name": account}})
        self.rbac.create_namespaced_role(
            self.namespace, {"metadata": {"name": account}, "rules": contract.runner_rules(name)}
        )
        self.rbac.create_namespaced_role_binding(
            self.namespace,
            {
                "metadata": {"name": account},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": account,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": account, "namespace": self.namespace}
                ],
            },
        )
        self.coordination.create_namespaced_lease(
            self.namespace,
            {
                "metadata": {"name": contract.lease_name(name)},
                "spec": {"leaseDurationSeconds": lease_seconds, "leaseTransitions": 0},
            },
        )
        return uid

    def submit_run(self, name: str, agent: str, text: str = "do the task") -> str:
        """Only the Run, as a user creates it (the operator makes its identity and Lease; for
        a Run re-created under a deleted one's name, those are still there)."""
        created = self.create(
            {
                "kind": "Run",
                "metadata": {"name": name},
                "spec": {"agentRef": {"name": agent}, "input": text},
            }
        )
        self.uids[name] = created["metadata"]["uid"]
        return self.uids[name]

    def until_finished(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """The Run's status once it Succeeded or Failed (explaining the namespace if not)."""
        status: dict[str, Any] = testing.until(
            lambda: (s := self.status(name)).get("phase") in ("Succeeded", "Failed") and s,
            timeout,
            what=f"Run {name} to finish",
            explain=lambda: self.cp.explain_namespace(self.namespace),
        )
        return status

    def kubeconfig(self, run: str) -> pathlib.Path:
        """A kubeconfig authenticating as the Run's runner ServiceAccount (TokenRequest)."""
        account = contract.runner_account_name(run)
        token = self.core.create_namespaced_service_account_token(
            account, self.namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        admin = yaml.safe_load(self.cp.kubeconfig.read_text())
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "runner",
                    "context": {
                        "cluster": admin["clusters"][0]["name"],
                        "user": account,
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "runner",
        }
        path = self.folder / f"{run}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_runner(
        self,
        run: str,
        attempt: int = 1,
        lease_seconds: float | None = None,
        env: dict[str, str] | None = None,
    ) -> RunnerProcess:
        pod = f"{run}-a{attempt}-pod"
        variables = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "KUBECONFIG": str(self.kubeconfig(run)),
            contract.ENV_RUN_NAME: run,
            contract.ENV_RUN_NAMESPACE: self.namespace,
            contract.ENV_RUN_UID: self.uids[run],
            contract.ENV_ATTEMPT: str(attempt),
            contract.ENV_POD_NAME: pod,
            contract.ENV_LEASE_NAME: contract.lease_name(run),
            contract.ENV_MODEL_API_KEY: "sk-test",
            "BOSUN_RUNNER_APPROVAL_POLL_SECONDS": "0.2",
            "BOSUN_RUNNER_MODEL_BACKOFF_SECONDS": "0.05",
            "BOSUN_RUNNER_MODEL_MAX_BACKOFF_SECONDS": "0.5",
        }
        if lease_seconds is not None:
            variables[contract.ENV_LEASE_DURATION] = str(lease_seconds)
        variables.update(env or {})
        log_path = self.folder / f"{pod}.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bosun.runner"],
                env=variables,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = RunnerProcess(proc, log_path, pod)
        self.processes.append(process)
        return process

    # --- reading back ----------------------------------------------------------------------------

    def journal(self, run: str) -> list[dict[str, Any]]:
        cluster = kubeapi.Cluster(self.namespace, self.rest)
        uid = self.uids.get(run) or self.get("Run", run)["metadata"]["uid"]
        return journal_chunks.ChunkBackend(cluster, run, uid).read()

    def decisions(self, run: str) -> list[dict[str, Any]]:
        return [r for r in self.journal(run) if r["type"] == "decision"]

    def status(self, run: str) -> dict[str, Any]:
        return dict(self.get("Run", run).get("status") or {})

    def condition(self, run: str, kind: str) -> dict[str, Any] | None:
        for item in self.status(run).get("conditions") or ():
            if item["type"] == kind:
                return dict(item)
        return None

    def events(self, run: str) -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(self.namespace).items
            if e.involved_object.name == run
        ]

    def lease(self, run: str) -> dict[str, Any]:
        lease = self.coordination.read_namespaced_lease(contract.lease_name(run), self.namespace)
        return {"holder": lease.spec.holder_identity, "transitions": lease.spec.lease_transitions}

    def explain(self, process: RunnerProcess | None = None) -> str:
        parts = [f"runner log {p.pod}:\n{p.text()[-6000:]}" for p in self.processes]
        return "\n".join(parts)

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        self.api.close()
        self.rest.close()
