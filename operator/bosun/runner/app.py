"""Wiring one attempt together: settings, logs, Lease, journal, loop, exit code.

``main`` acquires the Run's Lease (its epoch fences the journal), opens and replays the
journal, runs the loop and maps how the attempt ended to ``contract.ExitCode``. SIGTERM (the
Job being deleted, the Run suspended) stops the attempt at its next checkpoint, or at once
while a model request or tool call is in flight (``interrupt``). Whatever
happens, renewal stops and the Lease is released unless it was lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bosun import constants, contract, httpclients, kube
from bosun.api import agent as agent_api
from bosun.runner import (
    config,
    errors,
    interrupt,
    journal,
    journal_chunks,
    kubeapi,
    lease,
    logs,
    loop,
    providers,
    records,
    redaction,
    status,
    telemetry,
    tools,
)

__all__ = [
    "MESSAGE_MAX_CHARS",
    "TERMINATION_LOG",
    "Ending",
    "execute",
    "interruptible_sleep",
    "main",
    "redact",
]

log = logging.getLogger("bosun.runner")

TERMINATION_LOG = pathlib.Path("/dev/termination-log")
"""The kubelet's default ``terminationMessagePath``; the operator reads what is written here
from the pod's status for the reason an attempt ended."""


def interruptible_sleep(
    stop: threading.Event, check: Callable[[], None], slice_seconds: float = 0.5
) -> Callable[[float], None]:
    """A sleep that ends the attempt when the pod is stopping and runs ``check`` (the lease)
    while it waits, so a long backoff never outlives ownership of the Run."""

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if stop.wait(min(remaining, slice_seconds)):
                raise errors.Cancelled("Terminated", "the runner was asked to stop")
            check()

    return sleep


def _awaiting(run: dict[str, Any]) -> tuple[str, datetime.datetime] | None:
    for condition in (run.get("status") or {}).get("conditions") or ():
        if condition.get("type") == status.AWAITING_APPROVAL:
            moment = lease.parse_time(condition.get("lastTransitionTime"))
            if moment is not None:
                return str(condition.get("status")), moment
    return None


_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s@]*@)?(?P<rest>[^\s?#]*)[^\s]*")

MESSAGE_MAX_CHARS = 2000
"""The longest attempt-ending message kept (journal, termination message), after redaction."""


def redact(text: str, env: Mapping[str, str]) -> str:
    """``text`` fit to leave the pod (the termination message ends up in Run status and Events):
    every Secret value the runner holds blanked out in every form (``redaction.blank``), and
    URLs without credentials, query or fragment. Shorten only what this returned."""
    text = redaction.blank(text, redaction.secrets(env))
    return _URL.sub(lambda m: m.group("scheme") + m.group("rest"), text)


def _terminate_message(reason: str, message: str) -> None:
    # Only where the file was provided: the kubelet mounts it in a container, the node
    # emulator names its own. ``message`` arrives redacted: shortening it cannot expose a secret.
    path = pathlib.Path(os.environ.get(constants.EMULATOR_TERMINATION_LOG_ENV) or TERMINATION_LOG)
    if path.exists() and os.access(path, os.W_OK):
        # The kubelet keeps at most 4096 bytes of it: shorten the message until it fits.
        text, keep = "", 2000
        while keep >= 0:
            text = json.dumps({"reason": reason[:200], "message": message[:keep]})
            if len(text.encode()) <= 4096:
                break
            keep -= 250
        with contextlib.suppress(OSError):
            path.write_text(text)


def main(env: Mapping[str, str] | None = None) -> int:
    try:
        settings = config.Settings.from_env(env)
    except config.ConfigError as err:
        logs.configure()
        log.error("Failed to read settings", extra={"fields": {"error": str(err)}})
        return int(contract.ExitCode.FAILED_PERMANENT)
    identity: dict[str, Any] = {
        "run": settings.run_name,
        "namespace": settings.namespace,
        "attempt": settings.attempt,
        "pod": settings.pod_name,
    }
    source = os.environ if env is None else env
    logs.configure(settings.log_level, identity=identity, secrets=redaction.secrets(source))
    # Load the trust store for model and tool calls while the Lease and journal are fetched.
    threading.Thread(target=httpclients.prepare, name="tls", daemon=True).start()
    telemetry.configure(settings.otlp_endpoint)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return _attempt(settings, stop, os.environ if env is None else env, identity)
    finally:
        telemetry.shutdown()


@dataclasses.dataclass(frozen=True)
class Ending:
    """How an attempt ended: the exit code and the reason and message for the operator."""

    code: contract.ExitCode
    reason: str
    message: str = ""


def _attempt(
    settings: config.Settings,
    stop: threading.Event,
    env: Mapping[str, str],
    identity: dict[str, Any],
) -> int:
    bound = logs.bind("bosun.runner")
    try:
        # One connection pool, shared by this thread and the Lease's renewal thread.
        rest = kube.connect(timeout=kubeapi.TIMEOUT)
    except (kube.ConfigError, OSError) as err:  # OSError: the CA or certificate (ssl.SSLError)
        bound.error("Failed to reach the API server", fields={"error": str(err)})
        return int(contract.ExitCode.FAILED_RETRYABLE)
    cluster = kubeapi.Cluster(settings.namespace, rest)
    keeper = lease.LeaseKeeper(
        lambda: kubeapi.Cluster(settings.namespace, rest),
        settings.lease_name,
        settings.identity,
        duration_seconds=settings.lease_duration_seconds,
        renew_seconds=settings.lease_renew_seconds,
    )
    ending = Ending(contract.ExitCode.FAILED_RETRYABLE, "Failed")
    try:
        try:
            epoch = keeper.acquire(settings.lease_duration_seconds + settings.lease_renew_seconds)
        except errors.AttemptEnded as err:
            ending = _ended(err, env, bound)
        except kube.ApiError as err:
            ending = _api_failed(err, env, bound)
        else:
            keeper.start()
            identity["epoch"] = epoch
            ending = execute(settings, env, cluster, keeper, epoch, stop=stop)
    finally:
        # Handed back only when another attempt may follow soon; after a final outcome the
        # release would be one more API write for nobody.
        keeper.stop(release=ending.code in _NEXT_ATTEMPT_MAY_FOLLOW)
        rest.close()
    _terminate_message(ending.reason, ending.message)
    bound.info("Exited", fields={"exitCode": int(ending.code), "reason": ending.reason})
    return int(ending.code)


_NEXT_ATTEMPT_MAY_FOLLOW = frozenset(
    {contract.ExitCode.FAILED_RETRYABLE, contract.ExitCode.CANCELLED}
)


def _ended(err: errors.AttemptEnded, env: Mapping[str, str], bound: logs.RunLogger) -> Ending:
    # Redacted whole, then shortened: a secret cut by the shortening is blanked already.
    message = redact(err.message, env)[:MESSAGE_MAX_CHARS]
    level = logging.WARNING if isinstance(err, errors.LeaseLost) else logging.ERROR
    bound.log(level, "Ended attempt", fields={"reason": err.reason, "detail": message})
    return Ending(err.exit_code, err.reason, message)


def _api_failed(err: kube.ApiError, env: Mapping[str, str], bound: logs.RunLogger) -> Ending:
    message = redact(str(err), env)[:500]
    bound.error("Ended attempt", fields={"reason": "APIError", "detail": message})
    return Ending(contract.ExitCode.FAILED_RETRYABLE, "APIError", message)


def _journal_end(
    the_journal: journal.Journal | None,
    holder: lease.Holder,
    ending: Ending,
    bound: logs.RunLogger,
) -> None:
    """Record how the attempt ended, while this runner still owns the Run."""
    if the_journal is None or not holder.held():
        return
    end = records.AttemptEnded(
        reason=ending.reason, message=ending.message, exit_code=int(ending.code)
    )
    try:
        the_journal.write(end)
    except Exception as write_err:
        bound.warning("Failed to journal the end", fields={"error": repr(write_err)})


def execute(
    settings: config.Settings,
    env: Mapping[str, str],
    cluster: kubeapi.ClusterAPI,
    holder: lease.Holder,
    epoch: int,
    *,
    stop: threading.Event,
    tools_stop: threading.Event | None = None,
) -> Ending:
    """One attempt of the Run ``settings`` names, once ``holder`` owns it at ``epoch``: open and
    replay the journal, run the loop, record how it ended. The same code serves a Job's runner
    and a pool worker. ``stop`` ends the attempt at its next checkpoint and abandons a model
    request in flight; a tool call in flight is abandoned on ``tools_stop`` (default: ``stop``),
    so a draining worker lets a call finish and a cancelled Run does not wait for it."""
    bound = logs.bind("bosun.runner")
    reporter: status.Reporter | None = None
    the_journal: journal.Journal | None = None
    executor: tools.Caller | None = None
    try:
        try:
            run = cluster.get_run(settings.run_name)
        except kube.NotFound as err:
            raise errors.Cancelled("RunDeleted", "the Run no longer exists") from err
        reporter = status.Reporter(
            cluster,
            settings.run_name,
            settings.run_uid,
            settings.pod_name,
            awaiting=_awaiting(run),
            may_write=holder.held,
            interval=settings.status_interval_seconds,
        )
        agent_name = str(((run.get("spec") or {}).get("agentRef") or {}).get("name") or "")
        backend = journal_chunks.ChunkBackend(
            cluster,
            settings.run_name,
            settings.run_uid,
            settings.journal_chunk_bytes,
            agent=agent_name or None,
        )
        the_journal = journal.Journal(backend, epoch, settings.attempt, guard=holder.ensure_held)
        journaled = the_journal.open()
        bound.info("Opened journal", fields={"records": len(journaled), "epoch": epoch})
        sleep = interruptible_sleep(stop, holder.ensure_held)
        policy = providers.RetryPolicy(
            pacing=settings.model_pacing,
            max_retry_after_seconds=settings.max_retry_after_seconds,
            sleep=sleep,
        )

        # A request in flight when the pod is stopped is abandoned, not waited out.
        interrupter = interrupt.Interrupter(stop)
        tool_interrupter = interrupter if tools_stop is None else interrupt.Interrupter(tools_stop)

        def build_provider(spec: agent_api.ModelSpec) -> providers.Provider:
            built = providers.build(
                spec,
                settings.model_api_key,
                policy,
                max_response_bytes=settings.model_response_max_bytes,
            )
            return interrupt.InterruptibleProvider(built, interrupter)

        executor = interrupt.InterruptibleTools(
            tools.Executor(
                env,
                settings.tool_result_max_chars,
                sleep=sleep,
                max_response_bytes=settings.tool_response_max_bytes,
            ),
            tool_interrupter,
        )
        deps = loop.Deps(
            settings=settings,
            cluster=cluster,
            journal=the_journal,
            lease=holder,
            reporter=reporter,
            executor=executor,
            build_provider=build_provider,
            sleep=sleep,
            stopping=stop.is_set,
        )
        output = loop.AgentLoop(deps).execute(journaled)
        succeeded = redaction.shorten(output, 200, redaction.secrets(env))
        return Ending(contract.ExitCode.SUCCEEDED, "Succeeded", succeeded)
    except errors.AttemptEnded as err:
        ending = _ended(err, env, bound)
        if isinstance(err, errors.LeaseLost):
            if reporter is not None:
                reporter.event(
                    "LeaseLost",
                    f"Runner {settings.pod_name} lost the lease: {err.reason}",
                    warning=True,
                )
        elif isinstance(err, errors.JournalUntrusted):
            # Not a journal of this Run: nothing is added to it, and a human is told.
            if reporter is not None:
                reporter.event(err.reason, ending.message, warning=True)
        elif not isinstance(err, records.Unreadable):
            # A journal this runner cannot read is not one it adds to.
            _journal_end(the_journal, holder, ending, bound)
        return ending
    except kube.ApiError as err:
        ending = _api_failed(err, env, bound)
        # What waited for the next write (a model response) is recorded with the end.
        _journal_end(the_journal, holder, ending, bound)
        return ending
    finally:
        if reporter is not None:
            reporter.flush()  # the progress held back, when the attempt ended without output
        if executor is not None:
            executor.close()
