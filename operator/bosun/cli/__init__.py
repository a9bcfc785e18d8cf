"""The ``bosun`` command line: thin click commands over the package's modules.

Each command parses its options, calls one function elsewhere in the package and turns known
errors into a one-line message and a non-zero exit code; no logic lives here.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, Literal

import click

from bosun import kube, ops, scheduling
from bosun.api import crdgen
from bosun.cli import _common
from bosun.runner import approvals, errors, kubeapi, records, runtrace

__all__ = [
    "app",
    "crds",
    "gateway_command",
    "main",
    "operator_command",
    "redrive_command",
    "run_command",
    "schedule_backfill_command",
    "schedule_group",
    "schedule_trigger_command",
    "trace_command",
]


_fail = _common.fail


class _Commands(click.Group):
    """The top-level group; the dev tooling's commands are loaded only when asked for, so the
    operator image (which ships no dev tooling or its dependencies) can run ``bosun operator``."""

    _DEV = ("demo", "dev")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._DEV])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._DEV:
            # Deliberate lazy import: bosun.dev needs the dev extra (kubernetes, cryptography).
            from bosun.cli import dev  # noqa: PLC0415

            return dev.COMMANDS[cmd_name]
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Bosun: run AI agents on Kubernetes as governed, retried, observable Runs."""


@app.command("gateway")
@click.option("--kubeconfig", default=None, help="Kubeconfig to use (default: KUBECONFIG).")
def gateway_command(kubeconfig: str | None) -> None:
    """Receive Webhook deliveries (POST /hooks/NAMESPACE/NAME) and start their Runs: what the
    Helm chart's gateway Deployment runs. Settings come from BOSUN_GATEWAY_PORT,
    BOSUN_METRICS_PORT, BOSUN_NAMESPACES and BOSUN_GATEWAY_CONCURRENCY."""
    # Deliberate lazy import: only this command loads the gateway and prometheus_client.
    from bosun.gateway import server  # noqa: PLC0415

    try:
        sys.exit(server.run(kubeconfig))
    except kube.ConfigError as err:
        _fail(str(err))


@app.command("operator")
@click.option("--kubeconfig", default=None, help="Kubeconfig to use (default: KUBECONFIG).")
@click.option("--verbose", is_flag=True, help="Log debug details, kopf's included.")
def operator_command(kubeconfig: str | None, verbose: bool) -> None:
    """Run the operator against the current kubeconfig (what the Helm chart runs)."""
    # Deliberate lazy import: only this command loads kopf and the operator.
    from bosun.controller import main as operator_main  # noqa: PLC0415

    try:
        sys.exit(operator_main.run(kubeconfig, verbose))
    except kube.ConfigError as err:
        _fail(str(err))


_KUBECONFIG = click.option(
    "--kubeconfig", default=None, help="Kubeconfig to use (default: KUBECONFIG, ~/.kube/config)."
)
_NAMESPACE = click.option(
    "-n", "--namespace", default=None, help="Namespace (default: the kubeconfig context's)."
)


def _rest(kubeconfig: str | None) -> kube.Rest:
    try:
        rest = kube.connect(kubeconfig)
    except kube.ConfigError as err:
        _fail(str(err))
    try:
        ops.ensure_api(rest)
    except ops.OpsError as err:
        _fail(str(err))
    return rest


def _describe(run: dict[str, Any]) -> str:
    """One line on where a Run is; then, for each call waiting for a human, what it is and the
    commands that decide it."""
    status = run.get("status") or {}
    attempts = status.get("attempts") or []
    usage = status.get("usage") or {}
    parts = [f"phase={status.get('phase') or 'New'}"]
    if attempts:
        last = attempts[-1]
        parts.append(f"attempt={last['number']}")
        if last.get("outcome"):
            parts.append(f"outcome={last['outcome']}({last.get('reason', '')})")
    if status.get("nextRetryTime"):
        parts.append(f"nextRetry={status['nextRetryTime']}")
    if usage:
        parts.append(f"tokens={usage.get('totalTokens', 0)} tools={usage.get('toolCalls', 0)}")
    if status.get("duplicateOf"):
        parts.append(f"duplicateOf={status['duplicateOf']}")
    lines = [" ".join(parts)]
    meta = run.get("metadata") or {}
    for pending in status.get("pendingApprovals") or ():
        call_hash = str(pending.get("callHash", ""))
        approve = approvals.command("approve", meta.get("namespace", ""), meta["name"], call_hash)
        deny = approvals.command("deny", meta.get("namespace", ""), meta["name"], call_hash)
        args = json.dumps(pending.get("args") or {}, separators=(",", ":"), sort_keys=True)
        lines.append(
            f"    waiting for approval: {pending.get('tool')} {args[:200]}"
            f" (policy {pending.get('policy') or '-'}, rule {pending.get('rule') or '-'},"
            f" until {pending.get('expiryTime') or '-'})"
        )
        lines.append(f"    decide: {approve}   or   {deny}")
    return "\n".join(lines)


@app.command("run")
@click.argument("agent")
@click.option("--input", "text", required=True, help="The task: the agent's first message.")
@click.option("--name", default=None, help="Name of the Run (default: AGENT-<random>).")
@click.option("--idempotency-key", default=None, help="Deduplicate Runs with the same key.")
@click.option("--priority", default=0, show_default=True, type=int)
@click.option("--wait", is_flag=True, help="Follow the Run live until it finishes.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
@_NAMESPACE
@_KUBECONFIG
def run_command(
    agent: str,
    text: str,
    name: str | None,
    idempotency_key: str | None,
    priority: int,
    wait: bool,
    timeout: float,
    namespace: str | None,
    kubeconfig: str | None,
) -> None:
    """Start a Run of AGENT on --input; with --wait, follow it and print its output."""
    rest = _rest(kubeconfig)
    ns = ops.current_namespace(namespace)
    try:
        run = ops.create_run(
            rest, ns, agent, text, name=name, idempotency_key=idempotency_key, priority=priority
        )
    except ops.OpsError as err:
        _fail(str(err))
    run_name = run["metadata"]["name"]
    click.echo(f"run.bosun.dev/{run_name} created in {ns}")
    if not wait:
        return
    final: dict[str, Any] = run
    try:
        for final in ops.follow(rest, ns, run_name, timeout=timeout):
            click.echo(f"  {_describe(final)}")
    except ops.OpsError as err:
        _fail(str(err))
    status = final.get("status") or {}
    if status.get("output"):
        click.echo("")
        click.echo(status["output"])
    sys.exit(0 if status.get("phase") == "Succeeded" else 1)


@app.command("redrive")
@click.argument("run_name", metavar="RUN")
@_NAMESPACE
@_KUBECONFIG
def redrive_command(run_name: str, namespace: str | None, kubeconfig: str | None) -> None:
    """Run a dead-lettered (or failed) Run again with a fresh attempt budget."""
    rest = _rest(kubeconfig)
    try:
        token = ops.redrive(rest, ops.current_namespace(namespace), run_name)
    except ops.OpsError as err:
        _fail(str(err))
    click.echo(f"run.bosun.dev/{run_name} redrive requested ({token})")


def _decide(
    decision: Literal["Approved", "Denied"],
    run_name: str,
    call: str,
    reason: str | None,
    ns: str | None,
    cfg: str | None,
) -> None:

    rest = _rest(cfg)
    namespace = ops.current_namespace(ns)
    try:
        ops.get_run(rest, namespace, run_name)
        cluster = kubeapi.Cluster(namespace, rest)
        created = approvals.create_approval(cluster, run_name, call, decision, reason=reason)
    except (ops.OpsError, ValueError) as err:
        _fail(str(err))
    except kube.ApiError as err:
        _fail(f"the API server refused the Approval: {err.status} {err.reason}")
    spec = created.get("spec") or {}
    click.echo(
        f"approval.bosun.dev/{created['metadata']['name']} created: {decision} call "
        f"{spec.get('callHash', '')[:12]} of Run {run_name} by {spec.get('approvedBy')}"
    )


_REASON = click.option("--reason", default=None, help="Why, recorded on the Approval.")


def _decision_command(name: str, decision: Literal["Approved", "Denied"], verb: str) -> None:
    """Register ``bosun approve`` or ``bosun deny``: the same command for either decision."""

    @app.command(
        name, help=f"{verb} the paused tool call CALL (its hash, or a unique prefix) of Run RUN."
    )
    @click.argument("run_name", metavar="RUN")
    @click.argument("call", metavar="CALL")
    @_REASON
    @_NAMESPACE
    @_KUBECONFIG
    def command(
        run_name: str, call: str, reason: str | None, namespace: str | None, kubeconfig: str | None
    ) -> None:
        _decide(decision, run_name, call, reason, namespace, kubeconfig)


_decision_command("approve", "Approved", "Approve")
_decision_command("deny", "Denied", "Deny")


@app.command("trace")
@click.argument("run_name", metavar="RUN")
@_NAMESPACE
@_KUBECONFIG
def trace_command(run_name: str, namespace: str | None, kubeconfig: str | None) -> None:
    """Print a Run's decision path from its journal: model calls, tool calls, decisions."""
    rest = _rest(kubeconfig)
    ns = ops.current_namespace(namespace)
    try:
        run = ops.get_run(rest, ns, run_name)
    except ops.OpsError as err:
        _fail(str(err))
    cluster = kubeapi.Cluster(ns, rest)
    status = run.get("status") or {}
    try:
        click.echo(runtrace.render(runtrace.records(cluster, run_name), run_name, status))
    except (records.Unreadable, errors.JournalUntrusted) as err:
        _fail(f"the journal of Run {run_name} cannot be read: {err}")
    except kube.Forbidden:
        _fail(
            f"you may not read the journal of Run {run_name} (runjournals in namespace {ns}):"
            " it holds every model response and tool result, so the view role does not grant"
            " it; ask for the chart's journal-reader role in this namespace"
        )
    # The counts are the journal's (the first line); status.usage may lag it by one report.
    click.echo(f"phase={status.get('phase')} attempts={len(status.get('attempts') or [])}")


@app.group("schedule")
def schedule_group() -> None:
    """Fire a Schedule now, or create the Runs of a past range of its times."""


def _moment(text: str) -> datetime.datetime:
    try:
        found = datetime.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{text!r} is not a time: write RFC 3339, such as 2026-12-01T02:30:00Z")
    return found if found.tzinfo else found.replace(tzinfo=datetime.UTC)


@schedule_group.command("trigger")
@click.argument("name")
@_NAMESPACE
@_KUBECONFIG
def schedule_trigger_command(name: str, namespace: str | None, kubeconfig: str | None) -> None:
    """Start a Run of Schedule NAME's template now (whatever its overlapPolicy)."""
    rest = _rest(kubeconfig)
    try:
        run = scheduling.trigger_schedule(rest, ops.current_namespace(namespace), name)
    except ops.OpsError as err:
        _fail(str(err))
    click.echo(f"run.bosun.dev/{run['metadata']['name']} created")


@schedule_group.command("backfill")
@click.argument("name")
@click.option("--from", "start", required=True, help="First time (RFC 3339; UTC if no zone).")
@click.option("--to", "end", required=True, help="Last time, included.")
@_NAMESPACE
@_KUBECONFIG
def schedule_backfill_command(
    name: str, start: str, end: str, namespace: str | None, kubeconfig: str | None
) -> None:
    """Create the Runs of Schedule NAME's fire times from --from to --to, once each: the same
    names its fires have, so repeating a backfill creates nothing twice. Under an overlapPolicy
    other than Allow each Run starts once the one before has finished."""
    rest = _rest(kubeconfig)
    made = existed = 0
    try:
        for run_name, created in scheduling.backfill_schedule(
            rest, ops.current_namespace(namespace), name, _moment(start), _moment(end)
        ):
            made, existed = made + created, existed + (not created)
            click.echo(f"run.bosun.dev/{run_name} {'created' if created else 'exists already'}")
    except ops.OpsError as err:
        _fail(str(err))
    click.echo(f"{made} Runs created, {existed} existed already")


@app.command("crds")
def crds() -> None:
    """Print Bosun's CustomResourceDefinitions as YAML (for kubectl apply -f -)."""

    click.echo(crdgen.render_stream(), nl=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bosun`` console script."""
    app.main(args=argv, prog_name="bosun", standalone_mode=True)
    return 0
