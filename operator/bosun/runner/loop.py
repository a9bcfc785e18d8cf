"""The agent loop: model call → governed tool calls → repeat, resuming from the journal.

Each step re-reads the Run (to notice cancel/suspend), the Agent, its Tools and the Policies,
so a revoked permission applies to the very next call. Before a model call the limits,
budgets and allowed models are checked; before a tool call governance decides, an approval
may pause the run, and this runner proves it still holds the Lease. Every model response,
decision, tool start and tool result is journaled before the loop moves on; on a retried
attempt the journal is replayed and nothing recorded is done again.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from bosun import cel
from bosun.api import agent as agent_api
from bosun.api import approval as approval_api
from bosun.api import run as run_api
from bosun.api import tool as tool_api
from bosun.runner import (
    audit,
    config,
    conversation,
    errors,
    governance,
    governing,
    journal,
    kubeapi,
    lease,
    logs,
    pausing,
    providers,
    records,
    replay,
    status,
    structured,
    telemetry,
    tools,
    world,
)

__all__ = ["OUTPUT_INVALID", "OUTPUT_SCHEMA_INVALID", "AgentLoop", "Deps", "Sleep"]

OUTPUT_INVALID = "OutputInvalid"
"""The reason of a Run whose final answers kept failing ``outputSchema``."""
OUTPUT_SCHEMA_INVALID = "InvalidOutputSchema"
"""The reason of a Run whose Agent's ``outputSchema`` is not a JSON Schema Bosun can check."""

log = logging.getLogger("bosun.runner.loop")

Sleep = Callable[[float], None]


@dataclasses.dataclass
class Deps:
    """Everything the loop talks to, injected so tests can substitute any of it."""

    settings: config.Settings
    cluster: kubeapi.ClusterAPI
    journal: journal.Journal
    lease: lease.Holder
    reporter: status.Reporter
    executor: tools.Caller
    build_provider: Callable[[agent_api.ModelSpec], providers.Provider]
    sleep: Sleep = time.sleep
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    clock: Callable[[], float] = time.monotonic
    stopping: Callable[[], bool] = lambda: False
    evaluator: cel.Evaluator = dataclasses.field(default_factory=cel.Evaluator)
    decision_seconds: list[float] = dataclasses.field(default_factory=list)


class AgentLoop:
    """Runs one attempt of one Run to its end, or raises ``errors.AttemptEnded``."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.state = replay.State()
        self.started = deps.clock()
        self.run_obj: dict[str, Any] = {}
        self.run: run_api.Run | None = None
        self.agent_obj: dict[str, Any] = {}
        self.agent: agent_api.Agent | None = None
        self.provider: providers.Provider | None = None

    # --- reading the world --------------------------------------------------------------------

    def _refresh_run(self) -> run_api.Run:
        self.run_obj, self.run = world.read_run(self.deps.cluster, self.settings)
        return self.run

    def _refresh_agent(self) -> agent_api.Agent:
        assert self.run is not None
        self.agent_obj, self.agent = world.read_agent(self.deps.cluster, self.run)
        return self.agent

    # --- checks --------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Stop here if the pod is stopping, the attempt ran too long, or the lease is gone."""
        if self.deps.stopping():
            raise errors.Cancelled("Terminated", "the runner was asked to stop")
        limits = self.agent.spec.limits if self.agent is not None else None
        timeout = limits.run_timeout_seconds if limits is not None else None
        if timeout is not None and self.deps.clock() - self.started > timeout:
            raise errors.RetryableFailure("AttemptTimedOut", f"the attempt ran over {timeout}s")
        self.deps.lease.ensure_held()

    def _counters(self) -> governance.Counters:
        """This Run's usage from its journal, plus the Agent's other Runs' within the hour
        from the (just refreshed) Agent's status."""
        now = self.deps.now()
        published = self.agent.status.usage if self.agent is not None else None
        return governance.counters(
            self.state.usage(), self.state.window(now), published, self.settings.run_name, now
        )

    def _policies(self, agent: agent_api.Agent) -> governing.PolicySet:
        """The Policies and ClusterPolicies governing the next call, read fresh."""
        return world.read_policies(self.deps.cluster, self.settings, agent, self.deps.now())

    # --- reporting -----------------------------------------------------------------------------

    def report(
        self,
        output: str | None = None,
        pending: tuple[status.Pending, ...] = (),
        reason: str = "NoApprovalPending",
        message: str = "",
    ) -> None:
        self.deps.reporter.status(
            status.Report(
                usage=self.state.usage(),
                steps=self.state.model_calls,
                output=output,
                pending=pending,
                reason=reason,
                message=message,
            )
        )

    def write(self, *entries: records.Record) -> None:
        self.state.apply(self.deps.journal.write(*entries))

    def defer(self, *entries: records.Record) -> None:
        """Record ``entries`` with the next write (``Journal.defer``)."""
        self.state.apply(self.deps.journal.defer(*entries))

    # --- the loop ------------------------------------------------------------------------------

    def execute(self, journaled: list[records.Record]) -> str:
        """Run the attempt from the ``journaled`` records to the Run's final answer."""
        self.state = replay.State.build(journaled)
        self._refresh_run()
        agent = self._refresh_agent()
        if self.state.finished is not None:
            output = self.state.finished.output
            self.report(output=output)
            return output
        schema = agent.spec.output_schema
        problem = structured.schema_problem(schema) if schema is not None else None
        if problem is not None:  # the author's mistake: no model call could satisfy it
            raise errors.PermanentFailure(OUTPUT_SCHEMA_INVALID, problem)
        self.defer(
            records.AttemptStarted(pod=self.settings.pod_name, replayed_records=len(journaled))
        )
        self.provider = self.deps.build_provider(agent.spec.model)
        self.report()
        with telemetry.span(
            f"invoke_agent {agent.metadata.name}",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent.metadata.name},
        ):
            try:
                return self._loop()
            finally:
                self.provider.close()

    def _loop(self) -> str:
        while True:
            self.checkpoint()
            open_calls = self.state.open_calls()
            if open_calls:
                for call in open_calls:
                    self.settle(call)
                self.report()
                continue
            answer = self.state.answer()
            if answer is not None:
                output = self.accept(*answer)
                if output is not None:
                    return self.finish(output)
                continue  # the answer went back to the model with its problems
            self.model_step()

    def accept(self, step: int, text: str) -> str | None:
        """The Run's output for the final answer of ``step``, or None when it does not satisfy
        the Agent's ``outputSchema`` and went back to the model (``OutputRejected``)."""
        agent = self._refresh_agent()
        schema = agent.spec.output_schema
        if schema is None:
            return text
        checked = structured.check(schema, text)
        problems = checked.problems
        if checked.output is not None and len(checked.output) > self.settings.output_max_chars:
            problems = f"the answer is over {self.settings.output_max_chars} characters"
        if problems is None:
            assert checked.output is not None
            return checked.output
        limits = agent.spec.limits
        allowed = (
            limits.max_output_retries
            if limits is not None and limits.max_output_retries is not None
            else agent_api.DEFAULT_MAX_OUTPUT_RETRIES
        )
        if len(self.state.rejected) >= allowed:
            raise errors.PermanentFailure(
                OUTPUT_INVALID,
                f"the final answer did not satisfy spec.outputSchema after"
                f" {len(self.state.rejected) + 1} tries: {problems}",
            )
        logs.record(log, logging.INFO, "Returned the answer to the model", step=step)
        self.write(records.OutputRejected(step=step, problems=problems))
        return None

    def finish(self, text: str) -> str:
        output = tools.bounded(text, self.settings.output_max_chars)
        self.write(records.RunFinished(output=output, reason="Answered"))
        self.report(output=output)
        logs.record(log, logging.INFO, "Finished run", steps=self.state.model_calls)
        return output

    def model_step(self) -> None:
        run = self._refresh_run()
        agent = self._refresh_agent()
        provider = self.provider
        assert provider is not None
        step = self.state.model_calls + 1
        policies, counters = self._policies(agent), self._counters()
        started = time.perf_counter()
        decision = governance.decide_model_call(
            agent=agent,
            policies=policies,
            model=provider.model or provider.provider,
            counters=counters,
        )
        self.deps.decision_seconds.append(time.perf_counter() - started)
        if decision.denied:
            self.audit(self.decision_record(step, None, decision, records.Outcome.DENIED))
            raise errors.PermanentFailure(decision.reason, decision.message)
        listed = world.read_tools(self.deps.cluster, list(agent.spec.tools))
        request = conversation.ModelRequest(
            system=agent.spec.instructions or "",
            messages=self.state.messages(run.spec.input),
            tools=[tools.definition(listed[name]) for name in agent.spec.tools if name in listed],
            call_index=self.state.model_calls,
            output_schema=agent.spec.output_schema,
        )
        began = time.perf_counter()
        with telemetry.span(
            f"chat {provider.model}",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": provider.provider,
                "gen_ai.request.model": provider.model,
            },
        ) as span:
            turn = provider.complete(request)
            span.set_attribute("gen_ai.usage.input_tokens", turn.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", turn.usage.output_tokens)
        elapsed_ms = round((time.perf_counter() - began) * 1000, 1)
        self.checkpoint()
        # Durable with the decision on its first tool call, or with the Run's end.
        self.defer(records.ModelResponse(step=step, turn=turn, duration_ms=elapsed_ms))
        logs.record(
            log,
            logging.INFO,
            "Received model response",
            step=step,
            model=turn.model,
            toolCalls=[c.name for c in turn.tool_calls],
            inputTokens=turn.usage.input_tokens,
            outputTokens=turn.usage.output_tokens,
            durationMs=elapsed_ms,
        )
        self.report()

    # --- tool calls ----------------------------------------------------------------------------

    def idempotency_key(self, call: replay.CallState) -> str:
        seed = f"{self.settings.run_uid}/{call.step}/{call.call.id}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]

    def decision_record(
        self,
        step: int,
        call: replay.CallState | None,
        decision: governance.Decision,
        outcome: records.Outcome,
        approval: approval_api.Approval | None = None,
    ) -> records.Decision:
        """The journal record of one governance decision (and of who approved, if anyone)."""
        timing = self.deps.decision_seconds
        micros = round(timing[-1] * 1e6) if timing else None
        return audit.decision_record(
            step, call, decision, outcome, approval=approval, decision_micros=micros
        )

    def audit(self, record: records.Decision, *also: records.Record) -> None:
        """Journal and log one governance decision, then write ``also`` in the same write."""
        self.write(record, *also)
        fields = record.body()
        fields["decision"] = fields.pop("outcome")
        level = logging.WARNING if record.denial else logging.INFO
        logs.record(log, level, "Decided call", **fields)

    def decide(self, call: replay.CallState) -> tuple[governance.Decision, tool_api.Tool | None]:
        """Governance on fresh objects: the Run, the Agent, the Tool and every Policy."""
        self._refresh_run()
        agent = self._refresh_agent()
        tool = (
            world.read_tool(self.deps.cluster, call.call.name)
            if call.call.name in agent.spec.tools
            else None
        )
        args_error = call.call.args_error
        if tool is not None and args_error is None:
            args_error = tools.validate_args(tool.spec.input_schema, call.call.args)
        policies, counters = self._policies(agent), self._counters()
        context = {"agent": world.cel_view(self.agent_obj), "run": world.cel_view(self.run_obj)}
        started = time.perf_counter()
        decision = governance.decide_tool_call(
            agent=agent,
            policies=policies,
            tool_name=call.call.name,
            tool=tool,
            args=call.call.args,
            args_error=args_error,
            counters=counters,
            context=context,
            evaluator=self.deps.evaluator,
        )
        self.deps.decision_seconds.append(time.perf_counter() - started)
        return decision, tool

    def deny(self, call: replay.CallState, decision: governance.Decision) -> None:
        self.audit(self.decision_record(call.step, call, decision, records.Outcome.DENIED))
        self.deps.reporter.event(
            "ToolDenied",
            f"Denied call of tool {call.call.name} at step {call.step}: {decision.reason}"
            f" (policy {decision.policy or '-'}, rule {decision.rule or '-'})",
            warning=True,
        )

    def settle(self, call: replay.CallState) -> None:
        self.checkpoint()
        if call.unknown:
            self.resend(call)
            return
        decision, tool = self.decide(call)
        if decision.denied:
            self.deny(call, decision)
            return
        outcome: records.Outcome = records.Outcome.ALLOWED
        approval = None
        if decision.action == "RequireApproval":
            approval = self.await_approval(call, decision)
            if approval is None:
                return
            # The wait may have been long: a permission revoked meanwhile still applies.
            again, tool = self.decide(call)
            if again.denied:
                self.deny(call, again)
                return
            outcome = records.Outcome.APPROVAL_GRANTED
        assert tool is not None
        key = self.idempotency_key(call)
        self.checkpoint()
        self.audit(
            self.decision_record(call.step, call, decision, outcome, approval),
            records.ToolStarted(
                step=call.step,
                call_id=call.call.id,
                tool=call.call.name,
                # Only an idempotent Tool is sent the key; the journal says what was sent.
                idempotency_key=key if tool.spec.idempotent else "",
            ),
        )
        self.run_tool(call, tool, key)

    def run_tool(self, call: replay.CallState, tool: tool_api.Tool, key: str) -> None:
        # The journal write just before may have outlasted the Lease (a worker stopped and
        # resumed, a partitioned pod): never send for an attempt another may own by now. The
        # next attempt resends an idempotent call by its key, and stops a non-idempotent one
        # for a human, as after a crash at this point.
        self.deps.lease.ensure_held()
        began = time.perf_counter()
        with telemetry.span(
            f"execute_tool {call.call.name}",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.call.name},
        ):
            result = self.deps.executor.call(tool, call.call.args, key)
        elapsed_ms = round((time.perf_counter() - began) * 1000, 1)
        self.checkpoint()
        self.write(
            records.ToolResult(
                step=call.step,
                call_id=call.call.id,
                tool=call.call.name,
                content=result.content,
                is_error=result.is_error,
                status=result.status,
                duration_ms=elapsed_ms,
            )
        )
        logs.record(
            log,
            logging.INFO,
            "Called tool",
            step=call.step,
            tool=call.call.name,
            callId=call.call.id,
            isError=result.is_error,
            durationMs=elapsed_ms,
        )

    def resend(self, call: replay.CallState) -> None:
        """A call whose outcome is unknown: re-send it only when its Tool is idempotent, and
        only if governance allows it now. The journal is no authority to call anything."""
        decision, tool = self.decide(call)
        if decision.denied:
            self.deny(call, decision)
            return
        approval = None
        if decision.action == "RequireApproval":
            approval = self.await_approval(call, decision)
            if approval is None:
                return
        recorded = call.started.idempotency_key if call.started is not None else ""
        key = recorded or self.idempotency_key(call)
        unknown = governance.Decision(
            "Allow", "OutcomeUnknown", "the previous attempt ended during this call"
        )
        if tool is None or not tool.spec.idempotent:
            self.audit(
                self.decision_record(call.step, call, unknown, records.Outcome.OUTCOME_UNKNOWN)
            )
            self.deps.reporter.event(
                "NeedsHuman",
                f"Call of tool {call.call.name} at step {call.step} may or may not have taken "
                "effect and the Tool is not idempotent; a human must decide",
                warning=True,
            )
            raise errors.NeedsHuman(
                "OutcomeUnknown",
                f"call {call.call.id} of tool {call.call.name} at step {call.step}",
            )
        resent = self.decision_record(call.step, call, unknown, records.Outcome.RESENT, approval)
        self.audit(dataclasses.replace(resent, idempotency_key=key))
        self.run_tool(call, tool, key)

    # --- approvals -----------------------------------------------------------------------------

    def await_approval(
        self, call: replay.CallState, decision: governance.Decision
    ) -> approval_api.Approval | None:
        """Pause until a human decides; the Approval that approved it, or None when not."""

        def check() -> None:
            self.checkpoint()
            self._refresh_run()

        gate = pausing.Gate(
            cluster=self.deps.cluster,
            reporter=self.deps.reporter,
            settings=self.settings,
            audit=self.audit,
            record=self.decision_record,
            report=self.report,
            check=check,
            sleep=self.deps.sleep,
            now=self.deps.now,
        )
        return pausing.await_approval(gate, self.state, self.run_obj, call, decision)
