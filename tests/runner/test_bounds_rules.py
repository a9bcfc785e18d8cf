"""Bounds on rules run over model-written arguments (schema patterns, CEL), and redaction."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from bosun import cel, contract
from bosun.api import policy as policy_api
from bosun.runner import app, config, governance, logs, redaction, telemetry, tools

from . import fakes

# --- inputSchema patterns ----------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    # Python's backtracking re needs about 2**40 steps here; RE2 needs about 40.
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}
    problem = tools.validate_args(schema, {"code": "a" * 40 + "!"})
    assert problem is not None and "does not match" in problem
    assert tools.validate_args(schema, {"code": "aaaa"}) is None
    keyed = {"type": "object", "patternProperties": {"^(a|a)+$": {"type": "integer"}}}
    assert "is not of type" in (tools.validate_args(keyed, {"a" * 40 + "!": 1, "aa": "x"}) or "")


def test_a_pattern_re2_cannot_run_is_a_validation_error_not_a_crash() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "(a)\\1"}}}
    problem = tools.validate_args(schema, {"x": "aa"})
    assert problem is not None
    assert problem.startswith("invalid arguments: the tool's inputSchema pattern '(a)\\\\1'")
    assert "not supported" in problem


def test_pattern_properties_and_additional_properties_keep_their_meaning() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": False,
    }
    assert tools.validate_args(schema, {"id": "1", "x-team": "billing"}) is None
    problem = tools.validate_args(schema, {"id": "1", "x-n": 5, "other": 1})
    assert problem is not None and "x-n" in problem and "'other' was unexpected" in problem
    typed = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert "is not of type" in (tools.validate_args(typed, {"a": "b"}) or "")
    names = {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}
    assert "does not match" in (tools.validate_args(names, {"A1": 1}) or "")


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "patternProperties": {"^x": {}},
        "unevaluatedProperties": False,
    }
    assert "unevaluatedProperties" in (tools.validate_args(schema, {"x": 1}) or "")


@pytest.mark.timeout(20)
def test_unique_items_is_linear_and_keeps_json_equality() -> None:
    schema = {"type": "object", "properties": {"l": {"type": "array", "uniqueItems": True}}}
    many = [{"n": i} for i in range(20_000)]  # pairwise comparison: 2 * 10**8 steps
    assert tools.validate_args(schema, {"l": many}) is None
    assert "non-unique" in (tools.validate_args(schema, {"l": [*many, {"n": 7}]}) or "")
    assert "non-unique" in (tools.validate_args(schema, {"l": [1, 1.0]}) or "")
    assert tools.validate_args(schema, {"l": [1, True, 0, False, [1], [True]]}) is None


def test_problem_messages_are_short_even_for_large_arguments() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "integer"}}}
    problem = tools.validate_args(schema, {"s": "x" * 100_000})
    assert problem is not None and len(problem) < 400


# --- CEL ---------------------------------------------------------------------------------------


def _values(**args: Any) -> dict[str, Any]:
    return cel.activation({"args": args})


def test_an_expression_over_the_length_limit_does_not_compile() -> None:
    lengths = [
        getattr(m, "max_length", None) for m in policy_api.PolicyRule.model_fields["when"].metadata
    ]
    assert cel.MAX_SOURCE_CHARS in lengths  # the Policy schema's own limit
    with pytest.raises(cel.CELLimitExceeded, match="longer than 4096"):
        cel.Evaluator().program("true || " * 600 + "true")
    with pytest.raises(cel.CELLimitExceeded, match="parse-tree nodes"):
        cel.Evaluator(max_nodes=50).program(" || ".join(["args.a == 1"] * 20))


DOUBLING = "[args.l]" + ".map(a, a + a)" * 30 + ".size() > 0"


@pytest.mark.timeout(30)
def test_an_expression_that_doubles_its_values_is_stopped_by_cost() -> None:
    with pytest.raises(cel.CELLimitExceeded, match="cost more than"):
        cel.Evaluator().evaluate(DOUBLING, _values(l=list(range(10))))


@pytest.mark.timeout(30)
def test_nested_macros_over_large_arguments_are_stopped_by_time() -> None:
    nested = "args.l.all(x, args.l.all(y, args.l.all(z, x + y + z >= 0)))"
    with pytest.raises(cel.CELLimitExceeded, match=r"longer than 0\.2s"):
        cel.Evaluator(time_limit_seconds=0.2).evaluate(nested, _values(l=list(range(400))))


@pytest.mark.timeout(30)
def test_a_stopped_branch_is_not_discarded_by_or() -> None:
    # celpy discards an error in one branch of || when the other is true: the limit must not be.
    with pytest.raises(cel.CELLimitExceeded):
        cel.Evaluator().evaluate(DOUBLING + " || true", _values(l=list(range(10))))
    # A map literal turns a ValueError inside it into an error value, which || then drops.
    inside_a_map = "{'k': " + DOUBLING.removesuffix(" > 0") + "}.size() > 0 || true"
    with pytest.raises(cel.CELLimitExceeded):
        cel.Evaluator().evaluate(inside_a_map, _values(l=list(range(10))))
    assert cel.Evaluator().evaluate("args.l.size() == 3", _values(l=[1, 2, 3]))


@pytest.mark.timeout(30)
def test_governance_denies_a_call_whose_rule_passes_a_cel_bound() -> None:
    policies = [
        fakes.policy("allow", [{"name": "all", "tools": ["*"], "action": "Allow"}]),
        fakes.policy(
            "guard", [{"name": "big", "tools": ["*"], "when": DOUBLING, "action": "Deny"}]
        ),
    ]
    decision = governance.decide_tool_call(
        agent=fakes.agent(["refund"]),
        policies=policies,
        tool_name="refund",
        tool=fakes.tool("refund"),
        args={"l": list(range(10))},
        args_error=None,
        counters=governance.Counters(),
        context={"agent": fakes.agent_obj(["refund"]), "run": fakes.run_obj()},
        evaluator=cel.Evaluator(),
    )
    assert (decision.action, decision.reason, decision.policy) == ("Deny", "CELError", "guard")
    assert "cost more than" in decision.message


def test_values_cel_cannot_take_are_a_cel_error() -> None:
    with pytest.raises(cel.CELError):
        cel.activation({"args": {"n": 2**70}})


# --- redaction ---------------------------------------------------------------------------------

SECRET = 'pa"ss/wörd+1'
ENV = {contract.ENV_MODEL_API_KEY: "sk-live-123456", contract.secret_env_name("s", "k"): SECRET}


def test_a_secret_is_blanked_in_every_form_it_travels_in() -> None:
    forms = [SECRET, json.dumps(SECRET)[1:-1], json.dumps(SECRET, ensure_ascii=False)[1:-1]]
    forms += ["pa%22ss%2Fw%C3%B6rd%2B1"]
    for form in forms:
        assert app.redact(f"before {form} after", ENV) == "before [redacted] after", form
    assert redaction.blank("abcd", ["abcd"]) == "[redacted]"
    assert redaction.blank("ab", ["ab"]) == "ab"  # too short to be told from a word


def test_a_secret_cut_by_shortening_is_blanked_before() -> None:
    text = "x" * 20 + "sk-live-123456"
    shortened = redaction.shorten(text, 27, redaction.secrets(ENV))
    assert "sk-l" not in shortened and shortened.startswith("x" * 20 + "[redact")
    # The attempt's end: redacted whole, then shortened for the journal and the pod.
    long = "y" * (app.MESSAGE_MAX_CHARS - 5) + "sk-live-123456"
    assert "sk-l" not in app.redact(long, ENV)[: app.MESSAGE_MAX_CHARS]


@pytest.fixture
def _keep_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_keep_logging")
def test_log_lines_never_carry_a_secret_value() -> None:
    stream = io.StringIO()
    logs.configure("INFO", stream, identity={"run": "r"}, secrets=redaction.secrets(ENV))
    logging.getLogger("bosun.runner.test").warning(
        "Retried", extra={"fields": {"failure": f"HTTP 401: {SECRET}", "key": "sk-live-123456"}}
    )
    line = stream.getvalue()
    assert "ss/w" not in line and "sk-live" not in line
    assert json.loads(line)["failure"] == "HTTP 401: [redacted]"


class _Recorder:
    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}
        self.attributes: dict[str, Any] = {}
        self.status: Any = None

    @contextlib.contextmanager
    def start_as_current_span(self, name: str, **kwargs: Any) -> Iterator[_Recorder]:
        self.kwargs = kwargs
        yield self

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_status(self, status: Any) -> None:
        self.status = status


def test_a_span_that_fails_records_the_exception_type_not_its_message() -> None:
    recorder = _Recorder()
    telemetry._state["tracer"] = recorder
    try:
        with pytest.raises(RuntimeError), telemetry.span("chat m", {"gen_ai.system": "openai"}):
            raise RuntimeError(f"answered 401: {SECRET}")
    finally:
        telemetry._state["tracer"] = None
    assert recorder.kwargs["record_exception"] is False
    assert recorder.kwargs["set_status_on_exception"] is False
    assert recorder.attributes["error.type"] == "RuntimeError"
    assert recorder.status.description == "RuntimeError"


# --- the journal bound -------------------------------------------------------------------------


def test_compressing_never_grows_a_turn_past_the_records_headroom() -> None:
    noise = os.urandom(config.MODEL_TURN_MAX_BYTES)
    assert len(zlib.compress(noise, 6)) - len(noise) < config.JOURNAL_RECORD_HEADROOM_BYTES // 8
    assert config.MODEL_TURN_MAX_BYTES + config.JOURNAL_RECORD_HEADROOM_BYTES <= (
        config.JOURNAL_WRITE_MAX_BYTES
    )
    settings = config.Settings.from_env(
        {
            contract.ENV_RUN_NAME: "r",
            contract.ENV_RUN_NAMESPACE: "ns",
            contract.ENV_RUN_UID: "u",
            contract.ENV_ATTEMPT: "1",
            config.ENV_MODEL_RESPONSE_MAX_BYTES: "2048",
        }
    )
    assert (settings.model_response_max_bytes, settings.tool_response_max_bytes) == (
        2048,
        config.RESPONSE_MAX_BYTES,
    )
