"""Writes the version-1 golden journals: real scenarios of the agent loop, recorded as stored.

Run against the runner as it was before journal records had a ``formatVersion`` (commit
b6a3ac6), so the files hold exactly what that runner wrote::

    git archive b6a3ac6 | tar -x -C /tmp/v1
    PYTHONPATH=/tmp/v1/operator:/tmp/v1/tests python tests/runner/golden/make_v1.py /tmp/v1/out

Each scenario drives ``tests/runner/test_loop.World`` (the real loop with in-memory fakes for
the cluster, the lease and the tool endpoint) and dumps the journal backend's stored records,
with what that runner's ``replay.State`` and ``runtrace.render`` made of them (``expected``).
The ``attemptEnded`` record is written the way ``bosun.runner.app`` writes it when an attempt
ends early. Kept for the record of how the files were made; it is not run by the tests.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from bosun.runner import (
    conversation,
    errors,
    replay,
    runtrace,
)
from runner import fakes, test_loop

ASK = [
    {"name": "ask", "tools": ["charge"], "action": "RequireApproval", "approvalTimeoutSeconds": 60}
]
STOP = [{"name": "stop", "tools": ["charge"], "action": "Deny"}]


def _approval(name: str, call_hash: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Approval",
        "metadata": {"name": name},
        "spec": {"runName": "run", "callHash": call_hash, **spec},
    }


def _ended(world: Any, attempt: int) -> None:
    """An attempt that ends early, journaled as ``app`` does."""
    runner, journal = world.loop(attempt, attempt)
    try:
        runner.execute(journal.open())
    except errors.AttemptEnded as err:
        journal.write(
            {
                "type": "attemptEnded",
                "reason": err.reason,
                "message": err.message,
                "exitCode": int(err.exit_code),
            }
        )
        return
    raise AssertionError("the attempt was expected to end early")


def answered() -> Any:
    world = test_loop.World([{"reply": "Hello from the agent"}])
    world.execute()
    return world


def tool_allowed() -> Any:
    world = test_loop.World(test_loop._charges(5))
    world.execute()
    return world


def tool_denied() -> Any:
    world = test_loop.World(test_loop._charges(5), STOP)
    world.execute()
    return world


def approval_granted() -> Any:
    world = test_loop.World(test_loop._charges(100), ASK)
    runner, journal = world.loop()

    def decide(seconds: float) -> None:
        world.clock.sleep(seconds)
        call_hash = world.decisions()[0]["callHash"]
        world.cluster.put(_approval("other", "0" * 64, decision="Approved", approvedBy="eve"))
        world.cluster.put(
            _approval("yes", call_hash, decision="Approved", approvedBy="bob", reason="known")
        )

    runner.deps.sleep = decide
    runner.execute(journal.open())
    return world


def approval_denied() -> Any:
    world = test_loop.World(test_loop._charges(900), ASK)
    runner, journal = world.loop()

    def decide(seconds: float) -> None:
        world.clock.sleep(seconds)
        call_hash = world.decisions()[0]["callHash"]
        world.cluster.put(
            _approval("no", call_hash, decision="Denied", approvedBy="alice", reason="too much")
        )

    runner.deps.sleep = decide
    runner.execute(journal.open())
    return world


def approval_pending() -> Any:
    """The lease is lost while the run waits for a human."""
    world = test_loop.World(test_loop._charges(100), ASK)
    runner, journal = world.loop()

    def lose(seconds: float) -> None:
        world.clock.sleep(seconds)
        world.lease.lose()

    runner.deps.sleep = lose
    try:
        runner.execute(journal.open())
    except errors.LeaseLost:
        return world
    raise AssertionError("the attempt was expected to lose its lease")


def approval_expired() -> Any:
    world = test_loop.World(test_loop._charges(100), ASK)
    world.execute()
    return world


def _interrupted(idempotent: bool) -> Any:
    world = test_loop.World(test_loop._charges(5))
    world.cluster.put(fakes.tool_obj("charge", inputSchema=test_loop.CHARGE, idempotent=idempotent))
    world.executor.on_call = world.lease.lose
    with contextlib.suppress(errors.LeaseLost):
        world.execute()
    world.executor.on_call, world.lease = None, fakes.FakeLease()
    return world


def interrupted() -> Any:
    return _interrupted(idempotent=True)


def resent_finished() -> Any:
    world = _interrupted(idempotent=True)
    world.execute(attempt=2, epoch=2)
    return world


def needs_human() -> Any:
    world = _interrupted(idempotent=False)
    _ended(world, attempt=2)
    return world


def limit_reached() -> Any:
    world = test_loop.World(test_loop._charges(1, 2), limits={"maxSteps": 2})
    _ended(world, attempt=1)
    return world


SCENARIOS: dict[str, Callable[[], Any]] = {
    "answered": answered,
    "tool-allowed": tool_allowed,
    "tool-denied": tool_denied,
    "approval-granted": approval_granted,
    "approval-denied": approval_denied,
    "approval-pending": approval_pending,
    "approval-expired": approval_expired,
    "interrupted": interrupted,
    "resent-finished": resent_finished,
    "needs-human": needs_human,
    "limit-reached": limit_reached,
}


def expected(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the runner that wrote ``records`` reads from them."""
    state = replay.State.build(records)
    told = [m for m in state.messages("go") if isinstance(m, conversation.ToolResults)]
    last = state.last_turn()
    return {
        "output": state.finished.get("output") if state.finished else None,
        "usage": state.usage(),
        "done": [[o.call_id, o.content, o.is_error] for m in told for o in m.outcomes],
        "open": [[c.call.id, c.unknown] for c in state.open_calls()],
        "answered": bool(last and last[1].is_final),
        "trace": runtrace.render(records, "run").splitlines(),
    }


def main(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, scenario in SCENARIOS.items():
        records = scenario().store.records
        golden = {"scenario": name, "records": records, "expected": expected(records)}
        text = json.dumps(golden, indent=1, ensure_ascii=False, sort_keys=True)
        (out / f"v1-{name}.json").write_text(text + "\n")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
