"""The agent loop with in-memory fakes: revocation, approval expiry, limits, replay, fencing."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from bosun.api import agent as agent_api
from bosun.api import tool as tool_api
from bosun.runner import config, errors, journal, loop, providers, records, status, tools

from . import fakes

CHARGE = {"type": "object", "properties": {"amount": {"type": "number"}}}


class FakeExecutor:
    def __init__(self, on_call: Any = None) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.on_call = on_call

    def call(self, tool: tool_api.Tool, args: dict[str, Any], key: str) -> tools.ToolResult:
        self.calls.append((tool.metadata.name or "", args, key))
        if self.on_call is not None:
            self.on_call()
        return tools.ToolResult(f"done {args}")

    def close(self) -> None:
        return None


class World:
    """A fake cluster with an Agent, a charge Tool, a Run and the loop's dependencies."""

    def __init__(
        self, script: list[dict[str, Any]], rules: list[dict[str, Any]] | None = None, **agent: Any
    ) -> None:
        self.cluster = fakes.FakeCluster()
        self.cluster.put(
            fakes.agent_obj(["charge"], model={"provider": "scripted", "script": script}, **agent)
        )
        self.cluster.put(fakes.tool_obj("charge", inputSchema=CHARGE))
        self.cluster.put(fakes.run_obj())
        self.cluster.put(
            fakes.policy_obj(
                "pay", rules or [{"name": "ok", "tools": ["charge"], "action": "Allow"}]
            )
        )
        self.clock = fakes.Clock()
        self.lease = fakes.FakeLease()
        self.store = journal.MemoryStore()
        self.executor = FakeExecutor()
        self.settings = config.Settings(
            run_name="run",
            namespace="ns",
            run_uid="run-uid",
            attempt=1,
            pod_name="pod",
            lease_name="lease",
            approval_poll_seconds=5,
        )

    def now(self) -> datetime.datetime:
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=self.clock.now
        )

    def loop(self, attempt: int = 1, epoch: int = 1) -> tuple[loop.AgentLoop, journal.Journal]:
        the_journal = journal.Journal(
            journal.MemoryBackend(self.store),
            epoch,
            attempt,
            guard=self.lease.ensure_held,
            now=self.now,
        )
        reporter = status.Reporter(
            self.cluster,
            "run",
            "run-uid",
            "pod",
            now=self.now,
        )
        deps = loop.Deps(
            settings=self.settings,
            cluster=self.cluster,
            journal=the_journal,
            lease=self.lease,
            reporter=reporter,
            executor=self.executor,
            build_provider=lambda spec: providers.build(spec, "", providers.RetryPolicy()),
            sleep=self.clock.sleep,
            now=self.now,
            clock=self.clock,
        )
        return loop.AgentLoop(deps), the_journal

    def execute(self, attempt: int = 1, epoch: int = 1) -> str:
        runner, the_journal = self.loop(attempt, epoch)
        return runner.execute(the_journal.open())

    def decisions(self) -> list[dict[str, Any]]:
        return [r for r in self.store.records if r["type"] == "decision"]


def _charges(*amounts: int) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = [
        {"toolCalls": [{"tool": "charge", "args": {"amount": a}}]} for a in amounts
    ]
    return [*turns, {"reply": "finished"}]


def test_a_scripted_run_goes_through_the_whole_loop() -> None:
    world = World(_charges(1, 2))
    assert world.execute() == "finished"
    assert [c[1] for c in world.executor.calls] == [{"amount": 1}, {"amount": 2}]
    assert world.cluster.statuses[-1]["status"]["output"] == "finished"
    assert world.cluster.statuses[-1]["status"]["usage"]["toolCalls"] == 2
    assert world.cluster.statuses[-1]["status"]["steps"] == 3
    # The lease was checked before every tool call and journal write.
    assert world.lease.checks >= 2 * 2 + 3


def test_revoking_a_permission_applies_to_the_next_call_of_a_run_in_flight() -> None:
    world = World(_charges(1, 2))
    world.executor.on_call = lambda: world.cluster.remove("Policy", "pay")
    assert world.execute() == "finished"
    assert [c[1] for c in world.executor.calls] == [{"amount": 1}]
    assert [d["reason"] for d in world.decisions()] == ["PolicyAllowed", "NoRuleAllows"]


def test_an_unanswered_approval_expires_into_a_denial() -> None:
    rules = [
        {
            "name": "ask",
            "tools": ["charge"],
            "action": "RequireApproval",
            "approvalTimeoutSeconds": 60,
        }
    ]
    world = World(_charges(7), rules)
    assert world.execute() == "finished"
    assert world.executor.calls == []
    assert [d["outcome"] for d in world.decisions()] == ["approvalRequested", "approvalExpired"]
    assert sum(world.clock.slept) == pytest.approx(60)
    reasons = [e["reason"] for e in world.cluster.events]
    assert reasons == ["ApprovalRequested", "ApprovalExpired"]
    conditions = [s["status"]["conditions"][0] for s in world.cluster.statuses]
    assert [c["status"] for c in conditions].count("True") >= 1
    assert conditions[-1]["status"] == "False"


def test_a_resumed_attempt_keeps_waiting_for_the_same_approval() -> None:
    rules = [
        {
            "name": "ask",
            "tools": ["charge"],
            "action": "RequireApproval",
            "approvalTimeoutSeconds": 600,
        }
    ]
    world = World(_charges(7), rules)
    world.lease.ensure_held = lambda: (  # type: ignore[method-assign]
        (_ for _ in ()).throw(errors.LeaseLost("LeaseExpired", "")) if world.clock.slept else None
    )
    with pytest.raises(errors.LeaseLost):
        world.execute()
    world.lease = fakes.FakeLease()
    world.cluster.put(
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "Approval",
            "metadata": {"name": "a"},
            "spec": {
                "runName": "run",
                "callHash": world.decisions()[0]["callHash"],
                "decision": "Approved",
                "approvedBy": "bob",
            },
        }
    )
    assert world.execute(attempt=2, epoch=2) == "finished"
    assert [d["outcome"] for d in world.decisions()] == ["approvalRequested", "approvalGranted"]
    assert world.decisions()[1]["approvedBy"] == "bob"
    assert len(world.executor.calls) == 1


def test_limits_end_the_run_before_the_call_that_would_cross_them() -> None:
    world = World(_charges(1, 2, 3), limits={"maxSteps": 2})
    with pytest.raises(errors.PermanentFailure) as caught:
        world.execute()
    assert caught.value.reason == "LimitReached"
    assert len(world.executor.calls) == 2
    assert world.decisions()[-1]["kind"] == "model"
    assert world.decisions()[-1]["rule"] == "Agent.spec.limits.maxSteps"


def test_a_lost_lease_stops_the_loop_before_the_tool_call() -> None:
    world = World(_charges(1))
    runner, the_journal = world.loop()
    original = world.lease.ensure_held

    def losing() -> None:
        # Ownership goes away right after the model responded (recorded, not yet written).
        if any(isinstance(r, records.ModelResponse) for r in the_journal.records):
            world.lease.lose()
        original()

    world.lease.ensure_held = losing  # type: ignore[method-assign]
    with pytest.raises(errors.LeaseLost):
        runner.execute(the_journal.open())
    assert world.executor.calls == []
    # Nothing more reaches the journal: the response goes with the decision it leads to.
    assert world.store.records == []


def test_a_model_response_is_written_with_the_tool_call_it_starts() -> None:
    world = World(_charges(1))
    runner, the_journal = world.loop()
    assert runner.execute(the_journal.open()) == "finished"
    types = [r["type"] for r in world.store.records]
    assert types == [
        "attemptStarted",
        "modelResponse",
        "decision",
        "toolStarted",
        "toolResult",
        "modelResponse",
        "runFinished",
    ]
    # Three durable writes for a Run with one tool call: the start of the call (with the
    # response that asked for it), its result, and the answer with the Run's end.
    assert len(the_journal.write_seconds) == 3


def test_cancel_and_suspend_end_the_attempt() -> None:
    world = World(_charges(1))
    world.cluster.put(fakes.run_obj(cancel=True))
    with pytest.raises(errors.Cancelled) as caught:
        world.execute()
    assert caught.value.reason == "RunCancelled"


def test_replaying_a_finished_journal_does_nothing_again() -> None:
    world = World(_charges(1))
    world.execute()
    before = list(world.store.records)
    assert world.execute(attempt=2, epoch=2) == "finished"
    assert world.store.records == before
    assert len(world.executor.calls) == 1


def test_an_unknown_outcome_is_resent_only_for_idempotent_tools() -> None:
    for idempotent, expected in ((True, None), (False, errors.NeedsHuman)):
        world = World(_charges(1))
        world.cluster.put(fakes.tool_obj("charge", inputSchema=CHARGE, idempotent=idempotent))
        world.executor.on_call = world.lease.lose
        with pytest.raises(errors.LeaseLost):
            world.execute()
        world.executor.on_call, world.lease = None, fakes.FakeLease()
        if expected is None:
            assert world.execute(attempt=2, epoch=2) == "finished"
            keys = [c[2] for c in world.executor.calls]
            assert len(keys) == 2 and keys[0] == keys[1]
        else:
            with pytest.raises(expected):
                world.execute(attempt=2, epoch=2)
            assert len(world.executor.calls) == 1


def test_the_model_spec_parses_with_the_api_models() -> None:
    spec = agent_api.ModelSpec.model_validate({"provider": "scripted", "script": [{"reply": "x"}]})
    assert providers.build(spec, "", providers.RetryPolicy()).provider == "scripted"


def test_a_permission_revoked_during_an_approval_wait_still_denies_the_call() -> None:
    rules = [
        {
            "name": "ask",
            "tools": ["charge"],
            "action": "RequireApproval",
            "approvalTimeoutSeconds": 600,
        }
    ]
    world = World(_charges(7), rules)

    def approve_then_revoke(seconds: float) -> None:
        world.clock.sleep(seconds)
        call_hash = world.decisions()[0]["callHash"]
        world.cluster.put(
            {
                "apiVersion": "bosun.dev/v1alpha1",
                "kind": "Approval",
                "metadata": {"name": "a"},
                "spec": {
                    "runName": "run",
                    "callHash": call_hash,
                    "decision": "Approved",
                    "approvedBy": "bob",
                },
            }
        )
        world.cluster.put(
            fakes.policy_obj("pay", [{"name": "stop", "tools": ["charge"], "action": "Deny"}])
        )

    runner, the_journal = world.loop()
    runner.deps.sleep = approve_then_revoke
    assert runner.execute(the_journal.open()) == "finished"
    assert world.executor.calls == []
    assert [d["outcome"] for d in world.decisions()] == ["approvalRequested", "denied"]
    assert world.decisions()[-1]["rule"] == "stop"


def test_the_journal_records_the_idempotency_key_only_where_it_is_sent() -> None:
    world = World(_charges(1))
    world.execute()
    started = [r for r in world.store.records if r["type"] == "toolStarted"]
    assert [r["idempotencyKey"] for r in started] == [""]  # charge is not idempotent
    sent = World(_charges(1))
    sent.cluster.put(fakes.tool_obj("charge", inputSchema=CHARGE, idempotent=True))
    sent.execute()
    keys = [r["idempotencyKey"] for r in sent.store.records if r["type"] == "toolStarted"]
    assert len(keys) == 1 and len(keys[0]) == 32
    assert [c[2] for c in sent.executor.calls] == keys


def test_status_progress_is_batched_while_approvals_and_the_output_go_at_once() -> None:
    cluster = fakes.FakeCluster()
    clock = fakes.Clock()
    reporter = status.Reporter(cluster, "run", "run-uid", "pod", interval=3.0, clock=clock)

    def report(steps: int, **more: Any) -> status.Report:
        return status.Report(usage={"modelCalls": steps}, steps=steps, **more)

    reporter.status(report(1))
    reporter.status(report(2))
    assert cluster.statuses == []  # progress within the interval waits
    clock.sleep(3.0)
    reporter.status(report(3))
    assert [s["status"]["steps"] for s in cluster.statuses] == [3]
    reporter.status(report(3))  # nothing changed: nothing sent
    pending = status.Pending(
        "h",
        "refund",
        {},
        None,
        None,
        datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
    )
    reporter.status(report(3, pending=(pending,)))  # a human waits for this one
    assert cluster.statuses[-1]["status"]["conditions"][0]["status"] == "True"
    reporter.status(report(4))  # the approval went away: at once
    assert cluster.statuses[-1]["status"]["conditions"][0]["status"] == "False"
    reporter.status(report(5))
    reporter.flush()  # the attempt ended without an output: the held progress goes
    assert cluster.statuses[-1]["status"]["steps"] == 5
    reporter.status(report(6, output="done"))
    assert cluster.statuses[-1]["status"]["output"] == "done"
    assert len(cluster.statuses) == 5
