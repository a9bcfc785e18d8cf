"""Bounds on what a model or a tool answers: capped bodies, valid usage, journal-sized turns."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
import zlib
from collections.abc import Iterator

import httpx
import pytest

from bosun import contract, retry
from bosun.api import agent as agent_api
from bosun.runner import bodies, config, conversation, journal_chunks, providers, tools
from bosun.runner.providers import anthropic, base, openai

from . import fakes


def _streamed(chunks: list[bytes], **headers: str) -> httpx.Response:
    """A response whose body arrives in ``chunks``, as from the network (not read yet)."""
    return httpx.Response(200, headers=headers, content=iter(chunks))


# --- bodies ------------------------------------------------------------------------------------


def test_a_body_is_read_up_to_the_cap_and_no_further() -> None:
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        for n in range(10_000):
            pulled.append(n)
            yield b"x" * 1000

    got = bodies.read(httpx.Response(200, content=endless()), 5000)
    assert got.truncated and got.data == b"x" * 5000
    assert len(pulled) <= 6  # stopped at the cap, not at the end of the body
    whole = bodies.read(_streamed([b"ab", b"cd"]), 4)
    assert (whole.data, whole.truncated) == (b"abcd", False)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_a_compression_bomb_is_decoded_only_up_to_the_cap(encoding: str) -> None:
    plain = b"\0" * (16 * 1024 * 1024)
    if encoding == "gzip":
        packed = gzip.compress(plain)
    elif encoding == "deflate":
        packed = zlib.compress(plain)
    else:
        squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        packed = squeeze.compress(plain) + squeeze.flush()
    assert len(packed) < 64 * 1024
    header = "deflate" if encoding == "raw-deflate" else encoding
    tracemalloc.start()
    try:
        got = bodies.read(_streamed([packed], **{"content-encoding": header}), 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.truncated and got.data == b"\0" * 1000
    assert peak < 1024 * 1024  # the 16 MiB it expands to were never held
    small = bodies.read(_streamed([gzip.compress(b"hello")], **{"content-encoding": "gzip"}), 10)
    assert (small.data, small.truncated) == (b"hello", False)


def test_an_unknown_encoding_and_a_slow_body_are_refused() -> None:
    with pytest.raises(bodies.UnsupportedEncoding):
        bodies.read(_streamed([b"x"], **{"content-encoding": "br"}), 10)
    ticks = iter(range(100))
    with pytest.raises(bodies.TooSlow):
        bodies.read(_streamed([b"a"] * 10), 100, seconds=3, clock=lambda: float(next(ticks)))


def test_text_utf8_cannot_encode_is_made_valid() -> None:
    assert bodies.valid_text("ok") == "ok"
    assert bodies.valid_text("a\ud800b") == "a?b"


# --- providers ---------------------------------------------------------------------------------


def _provider(
    kind: str, responses: list[httpx.Response], max_bytes: int = 1 << 20
) -> tuple[providers.Provider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0)

    spec = agent_api.ModelSpec.model_validate(
        {"provider": kind, "name": "m", "baseURL": "http://model.test/v1"}
    )
    policy = providers.RetryPolicy(pacing=retry.Policy(4, 0, 2, 0), sleep=lambda s: None)
    built = providers.build(
        spec, "sk", policy, httpx.MockTransport(handler), max_response_bytes=max_bytes
    )
    return built, seen


REQUEST = conversation.ModelRequest("", [conversation.UserMessage("hi")], [], 0)


def _openai(text: str = "hi", **usage: object) -> dict[str, object]:
    return {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, **usage},
    }


def test_a_model_response_over_the_cap_fails_permanently_without_a_retry() -> None:
    body = json.dumps(_openai("x" * 5000)).encode()
    chunks = [body[i : i + 512] for i in range(0, len(body), 512)]
    provider, seen = _provider("openai", [httpx.Response(200, content=iter(chunks))], 2048)
    with pytest.raises(providers.ModelResponseInvalid) as caught:
        provider.complete(REQUEST)
    assert caught.value.reason == "ModelResponseTooLarge"
    assert caught.value.exit_code == contract.ExitCode.FAILED_PERMANENT
    assert "2048 bytes" in caught.value.message
    assert len(seen) == 1


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1_000_000},
        {"completion_tokens": -5},
        {"prompt_tokens": 10**12},
        {"completion_tokens": 2.5},
        {"prompt_tokens": "12"},
        {"completion_tokens": True},
    ],
)
def test_openai_token_counts_that_are_not_counts_fail_the_call(usage: dict[str, object]) -> None:
    provider, seen = _provider("openai", [httpx.Response(200, json=_openai(**usage))])
    with pytest.raises(providers.ModelResponseInvalid) as caught:
        provider.complete(REQUEST)
    assert caught.value.reason == "ModelUsageInvalid"
    assert next(iter(usage)) in caught.value.message
    assert len(seen) == 1


def test_anthropic_token_counts_are_checked_too_and_valid_ones_pass() -> None:
    reply = {
        "content": [{"type": "text", "text": "ok"}],
        "usage": {"input_tokens": 5, "cache_read_input_tokens": -100, "output_tokens": 1},
    }
    with pytest.raises(providers.ModelResponseInvalid, match="cache_read_input_tokens"):
        anthropic.parse_response(reply, "m")
    with pytest.raises(providers.ModelResponseInvalid, match="usage is list"):
        openai.parse_response({**_openai(), "usage": [1]}, "m")
    turn = openai.parse_response(_openai(prompt_tokens=7.0), "m")
    assert turn.usage == conversation.TokenUsage(7, 2)
    assert openai.parse_response({**_openai(), "usage": None}, "m").usage.total == 0
    assert base.token_count({"n": base.MAX_TOKEN_COUNT}, "n") == base.MAX_TOKEN_COUNT


def test_a_turn_too_large_for_one_journal_record_fails_even_under_the_body_cap() -> None:
    # Numbers the journal writes longer than the model did: 1e15 is 1000000000000000.0.
    args = '{"n":[' + ",".join(["1e15"] * 60_000) + "]}"
    data = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "t", "arguments": args}}],
                }
            }
        ]
    }
    body = json.dumps(data).encode()
    assert len(body) < config.MODEL_TURN_MAX_BYTES
    provider, _ = _provider("openai", [httpx.Response(200, content=body)], 4 << 20)
    with pytest.raises(providers.ModelResponseInvalid) as caught:
        provider.complete(REQUEST)
    assert caught.value.reason == "ModelResponseTooLarge"


def test_a_turn_at_the_bound_fits_one_chunk_even_when_it_does_not_compress() -> None:
    rng = random.Random(7)
    alphabet = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
    alphabet += "".join(chr(c) for c in range(0x4E00, 0x4E00 + 2000))
    text = "".join(rng.choice(alphabet) for _ in range(300_000))
    turn = conversation.AssistantTurn(text=text, model="m", stop_reason="stop")
    while len(base._journal_form(turn).encode()) > config.MODEL_TURN_MAX_BYTES:
        turn = conversation.AssistantTurn(text=turn.text[:-1000], model="m", stop_reason="stop")
    assert base.fit_for_journal(turn) is turn
    record = {
        "type": "modelResponse",
        "formatVersion": 1,
        "seq": 10**9,
        "epoch": 10**9,
        "attempt": 10**6,
        "time": "2026-01-01T00:00:00.000+00:00",
        "step": 10**6,
        "turn": turn.to_json(),
        "durationMs": 123456789.5,
    }
    assert len(journal_chunks.encode([record])) <= config.JOURNAL_WRITE_MAX_BYTES


def test_a_lone_surrogate_from_the_model_is_replaced_so_the_journal_can_store_it() -> None:
    body = b'{"choices":[{"message":{"content":"a\\ud800b"}}]}'
    provider, _ = _provider("openai", [httpx.Response(200, content=body)])
    turn = provider.complete(REQUEST)
    assert turn.text == "a?b"
    journal_chunks.encode([{"turn": turn.to_json()}])


def test_an_error_body_is_read_only_in_part_and_not_shortened_before_redaction() -> None:
    explanation = "no such key sk-live-123456 " + "y" * (base.ERROR_BODY_BYTES * 2)
    provider, _ = _provider("openai", [httpx.Response(401, content=iter([explanation.encode()]))])
    with pytest.raises(providers.ModelRejected) as caught:
        provider.complete(REQUEST)
    assert len(caught.value.message) < base.ERROR_BODY_BYTES + 200
    assert "sk-live-123456" in caught.value.message  # whole: app.redact blanks it


# --- HTTP tools --------------------------------------------------------------------------------


def test_a_tool_response_over_the_cap_is_cut_unread_and_says_so() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"z" * 1000] * 100))

    executor = tools.Executor(
        {}, 10_000, http_transport=httpx.MockTransport(handler), max_response_bytes=3000
    )
    result = executor.call(fakes.tool("big"), {}, "k")
    assert not result.is_error and result.status == 200
    assert result.content.startswith("z" * 3000)
    assert "[truncated: the response was longer than 3000 bytes]" in result.content


def test_a_secret_a_tool_echoes_is_blanked_before_the_result_is_shortened() -> None:
    secret = "tok-" + "s" * 40
    env = {contract.secret_env_name("payments", "token"): secret}

    def handler(request: httpx.Request) -> httpx.Response:
        # The secret straddles the 50-character bound of the result.
        return httpx.Response(200, text="x" * 30 + request.headers["authorization"] + "tail")

    header = {
        "name": "Authorization",
        "valueFrom": {"secretKeyRef": {"name": "payments", "key": "token"}},
    }
    tool = fakes.tool("echo", http={"headers": [header]})
    executor = tools.Executor(env, 50, http_transport=httpx.MockTransport(handler))
    result = executor.call(tool, {}, "k")
    assert "tok-" not in result.content and "ssss" not in result.content
    assert result.content.startswith("x" * 30 + "[redacted]")

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="upstream said " + json.dumps({"auth": secret}))

    executor = tools.Executor(
        env, 50, sleep=lambda s: None, http_transport=httpx.MockTransport(failing)
    )
    failed = executor.call(tool, {}, "k")
    assert failed.is_error and "[redacted]" in failed.content and "ssss" not in failed.content
