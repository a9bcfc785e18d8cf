"""Runs driven by real OpenAI- and Anthropic-compatible servers and an MCP server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bosun import contract
from bosun.dev.servers import mcp_server, models, tools

from . import harness

pytestmark = pytest.mark.cluster

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
NOTE = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TWO_TOOLS_THEN_ANSWER = [
    {"toolCalls": [{"tool": "weather", "args": {"city": "Oslo"}}]},
    {"toolCalls": [{"tool": "notes", "args": {"text": "Oslo is cold"}}]},
    {"reply": "It is cold in Oslo; I noted it."},
]


def _tool_server(start: Callable[[Any], Any]) -> tools.ToolServer:
    return start(
        tools.ToolServer(
            {
                "weather": lambda a: {"city": a["city"], "celsius": -3},
                "notes": lambda a: {"saved": a["text"]},
            }
        )
    )


def _finish(kube: harness.Harness, run: str, proc: harness.RunnerProcess) -> None:
    code = proc.wait(120)
    assert code == contract.ExitCode.SUCCEEDED, kube.explain()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_remote_model_calls_two_tools_and_answers_with_reported_usage(
    kube: harness.Harness, servers: Callable[[Any], Any], provider: str
) -> None:
    server_class = models.OpenAIServer if provider == "openai" else models.AnthropicServer
    model = servers(server_class(TWO_TOOLS_THEN_ANSWER))
    toolbox = _tool_server(servers)
    base_url = f"{model.url}/v1" if provider == "openai" else model.url
    kube.agent(
        "helper",
        {"provider": provider, "name": "test-model", "baseURL": base_url},
        ["weather", "notes"],
        instructions="Be brief.",
    )
    kube.http_tool("weather", toolbox.url_for("weather"), WEATHER)
    kube.http_tool("notes", toolbox.url_for("notes"), NOTE)
    kube.allow_all()
    kube.run("r1", "helper")

    _finish(kube, "r1", kube.start_runner("r1"))

    assert toolbox.executions == [
        ("weather", {"city": "Oslo"}),
        ("notes", {"text": "Oslo is cold"}),
    ]
    status = kube.status("r1")
    assert status["output"] == "It is cold in Oslo; I noted it."
    reported_in = sum(u["input"] for u in model.reported)
    reported_out = sum(u["output"] for u in model.reported)
    assert status["usage"] == {
        "inputTokens": reported_in,
        "outputTokens": reported_out,
        "totalTokens": reported_in + reported_out,
        "modelCalls": 3,
        "toolCalls": 2,
        "deniedCalls": 0,
    }
    # The model saw the tool results and the system prompt in its provider's wire format.
    last = model.requests[-1].body
    if provider == "openai":
        assert last["messages"][0] == {"role": "system", "content": "Be brief."}
        assert [m["role"] for m in last["messages"]][-1] == "tool"
        assert '"celsius":-3' in last["messages"][3]["content"]
    else:
        assert last["system"] == "Be brief."
        assert last["messages"][-1]["content"][0]["type"] == "tool_result"
        assert model.requests[0].headers["x-api-key"] == "sk-test"
    records = kube.journal("r1")
    assert [r["type"] for r in records if r["type"] != "decision"] == [
        "attemptStarted",
        "modelResponse",
        "toolStarted",
        "toolResult",
        "modelResponse",
        "toolStarted",
        "toolResult",
        "modelResponse",
        "runFinished",
    ]
    assert kube.condition("r1", "AwaitingApproval")["status"] == "False"


def test_mcp_server_serves_a_tool_the_agent_calls(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    currency = servers(mcp_server.CurrencyMCP())
    schema = {
        "type": "object",
        "properties": {
            "amount": {"type": "number"},
            "source": {"type": "string"},
            "target": {"type": "string"},
        },
        "required": ["amount", "source", "target"],
    }
    script = [
        {
            "toolCalls": [
                {"tool": "convert", "args": {"amount": 10, "source": "EUR", "target": "GBP"}}
            ]
        },
        {"reply": "10 EUR is 5 GBP."},
    ]
    kube.agent("fx", {"provider": "scripted", "script": script}, ["convert"])
    kube.mcp_tool("convert", currency.url, "convert_currency", schema)
    kube.allow_all()
    kube.run("fx-run", "fx")

    _finish(kube, "fx-run", kube.start_runner("fx-run"))

    assert currency.calls == [{"amount": 10.0, "source": "EUR", "target": "GBP"}]
    result = next(r for r in kube.journal("fx-run") if r["type"] == "toolResult")
    assert result["content"] == "5.00 GBP"
    assert result["isError"] is False
    assert kube.status("fx-run")["output"] == "10 EUR is 5 GBP."


def test_rate_limit_storm_is_retried_honouring_retry_after_then_succeeds(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    model = servers(models.OpenAIServer([{"reply": "done"}]))
    model.rate_limit(5, retry_after="0.3")
    kube.agent("storm", {"provider": "openai", "name": "m", "baseURL": f"{model.url}/v1"}, [])
    kube.run("storm-run", "storm")

    _finish(kube, "storm-run", kube.start_runner("storm-run"))

    assert len(model.requests) == 6
    assert kube.status("storm-run")["output"] == "done"
    retries = [line for line in kube.processes[0].lines() if line["msg"] == "Retrying model call"]
    assert [r["retry"] for r in retries] == [1, 2, 3, 4, 5]
    assert all(r["reason"] == "ModelRateLimited" for r in retries)
    # Every wait honoured Retry-After; the jitter shows in the waits beyond it.
    assert all(r["delaySeconds"] >= 0.3 for r in retries)
    assert kube.status("storm-run")["usage"]["modelCalls"] == 1
