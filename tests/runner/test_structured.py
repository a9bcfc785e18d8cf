"""Structured outputs: the final answer checked against the Agent's ``outputSchema``, its
problems sent back to the model a bounded number of times, then a clean failure; journals
without the new record replay as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bosun.api import agent as agent_api
from bosun.runner import conversation, errors, loop, records, replay, structured
from bosun.runner.providers import anthropic, openai

from .test_loop import World

TRIAGE = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "bug", "other"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["category", "urgent"],
    "additionalProperties": False,
}


def _rejections(world: World) -> list[dict[str, Any]]:
    return [r for r in world.store.records if r["type"] == "outputRejected"]


@pytest.mark.parametrize(
    ("text", "output"),
    [
        ('{"category": "bug", "urgent": true}', '{"category":"bug","urgent":true}'),
        ('```json\n{"category": "bug", "urgent": false}\n```', '{"category":"bug","urgent":false}'),
        (
            '  ```\n{"category": "other", "urgent": false}```  ',
            '{"category":"other","urgent":false}',
        ),
    ],
)
def test_a_valid_answer_is_stored_as_compact_json(text: str, output: str) -> None:
    assert structured.check(TRIAGE, text) == structured.Checked(output, None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("It is a bug.", "the answer is not JSON"),
        ('{"category": "bug"}', "(root): 'urgent' is a required property"),
        ('{"category": "sales", "urgent": true}', "category: 'sales' is not one of"),
        ('{"category": "bug", "urgent": true, "x": 1}', "Additional properties"),
    ],
)
def test_an_invalid_answer_says_why(text: str, problem: str) -> None:
    checked = structured.check(TRIAGE, text)
    assert checked.output is None and checked.problems is not None
    assert problem in checked.problems


def test_problems_go_back_to_the_model_and_a_corrected_answer_succeeds() -> None:
    world = World(
        [{"reply": "Looks like a bug."}, {"reply": '{"category": "bug"}'},
         {"reply": '{"category": "bug", "urgent": true}'}],
        outputSchema=TRIAGE,
    )  # fmt: skip
    assert world.execute() == '{"category":"bug","urgent":true}'
    assert world.cluster.statuses[-1]["status"]["output"] == '{"category":"bug","urgent":true}'
    rejected = _rejections(world)
    assert [r["step"] for r in rejected] == [1, 2]
    assert "not JSON" in rejected[0]["problems"]
    assert "'urgent' is a required property" in rejected[1]["problems"]
    # What the model was shown after each rejected answer: the problems, as a user message.
    state = replay.State.build(records.read_all(world.store.records))
    messages = state.messages("Triage this")
    corrections = [m.text for m in messages if isinstance(m, conversation.UserMessage)][1:]
    assert corrections == [replay.output_correction(r["problems"]) for r in rejected]


def test_after_max_output_retries_the_run_fails_cleanly() -> None:
    world = World(
        [{"reply": "no"}, {"reply": "still no"}, {"reply": "never"}],
        outputSchema=TRIAGE,
        limits={"maxOutputRetries": 1},
    )
    with pytest.raises(errors.PermanentFailure) as failed:
        world.execute()
    assert failed.value.reason == loop.OUTPUT_INVALID
    assert "after 2 tries" in str(failed.value.message) and "not JSON" in failed.value.message
    assert len(_rejections(world)) == 1


def test_the_default_gives_two_more_tries() -> None:
    world = World([{"reply": "no"}] * 5, outputSchema=TRIAGE)
    with pytest.raises(errors.PermanentFailure, match="after 3 tries"):
        world.execute()
    assert agent_api.DEFAULT_MAX_OUTPUT_RETRIES == 2 == len(_rejections(world))


def test_a_schema_that_is_not_one_fails_before_any_model_call() -> None:
    world = World([{"reply": "{}"}], outputSchema={"type": "objet"})
    with pytest.raises(errors.PermanentFailure) as failed:
        world.execute()
    assert failed.value.reason == loop.OUTPUT_SCHEMA_INVALID
    assert "spec.outputSchema is invalid" in failed.value.message
    assert not [r for r in world.store.records if r["type"] == "modelResponse"]


def test_a_resumed_attempt_replays_the_rejections() -> None:
    script = [{"reply": "no"}, {"reply": '{"category": "other", "urgent": false}'}]
    first = World(script, outputSchema=TRIAGE)
    first.execute()
    # The journal as a lost first attempt left it: the first answer and its rejection.
    cut = next(i for i, r in enumerate(first.store.records) if r["type"] == "outputRejected")
    resumed = World(script, outputSchema=TRIAGE)
    resumed.store.records.extend(first.store.records[: cut + 1])
    state = replay.State.build(records.read_all(resumed.store.records))
    assert state.answer() is None and state.rejected == {1: _rejections(first)[0]["problems"]}
    assert resumed.execute(attempt=2, epoch=2) == '{"category":"other","urgent":false}'
    assert len(_rejections(resumed)) == 1  # not rejected again, and not re-asked twice
    assert [r["step"] for r in resumed.store.records if r["type"] == "modelResponse"] == [1, 2]


def test_a_journal_from_before_output_schemas_replays_unchanged() -> None:
    """A journal of the previous format (no outputRejected records) replays as before."""
    world = World([{"reply": "plain text answer"}])
    assert world.execute() == "plain text answer"
    stored = list(world.store.records)
    assert not _rejections(world)
    again = World([{"reply": "not used"}])
    again.store.records.extend(stored)
    assert again.execute(attempt=2, epoch=2) == "plain text answer"
    assert stored[0]["type"] == records.read({**stored[0], "formatVersion": None}).TYPE


def test_providers_get_the_schema_in_their_request() -> None:
    request = conversation.ModelRequest(
        system="Triage.", messages=[conversation.UserMessage("hi")], tools=[], call_index=0,
        output_schema=TRIAGE,
    )  # fmt: skip
    spec = agent_api.ModelSpec.model_validate({"provider": "openai", "name": "gpt-4o-mini"})
    body = openai.render_request(spec, request)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": TRIAGE},
    }
    claude = agent_api.ModelSpec.model_validate({"provider": "anthropic", "name": "claude"})
    system = anthropic.render_request(claude, request)["system"]
    assert (
        system.startswith("Triage.\n\n")
        and json.dumps(TRIAGE, sort_keys=True, separators=(",", ":")) in system
    )
    plain = conversation.ModelRequest(
        system="", messages=[conversation.UserMessage("hi")], tools=[], call_index=0
    )
    assert "response_format" not in openai.render_request(spec, plain)
    assert "system" not in anthropic.render_request(claude, plain)
