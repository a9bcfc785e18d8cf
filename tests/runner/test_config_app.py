"""Settings from the environment, JSON log lines, and the interruptible sleep."""

from __future__ import annotations

import io
import json
import logging
import pathlib
import threading
from collections.abc import Iterator

import pytest

from bosun import contract
from bosun.runner import app, config, errors, logs, telemetry


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """``logs.configure`` replaces the root handlers; give pytest its own back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


BASE = {
    contract.ENV_RUN_NAME: "r",
    contract.ENV_RUN_NAMESPACE: "ns",
    contract.ENV_RUN_UID: "u",
    contract.ENV_ATTEMPT: "2",
}


def test_settings_come_from_the_contract_variables_with_defaults() -> None:
    settings = config.Settings.from_env(
        {
            **BASE,
            contract.ENV_POD_NAME: "p",
            contract.ENV_LEASE_DURATION: "3",
            contract.ENV_MODEL_API_KEY: "sk",
        }
    )
    assert (settings.run_name, settings.attempt, settings.identity) == ("r", 2, "p")
    assert settings.lease_name == contract.lease_name("r")
    assert settings.lease_renew_seconds == 1.0
    assert "sk" not in repr(settings)
    defaults = config.Settings.from_env(BASE)
    assert defaults.lease_renew_seconds == contract.LEASE_RENEW_SECONDS


def test_missing_or_bad_settings_are_named() -> None:
    with pytest.raises(config.ConfigError, match="BOSUN_RUN_UID"):
        config.Settings.from_env({k: v for k, v in BASE.items() if k != contract.ENV_RUN_UID})
    with pytest.raises(config.ConfigError, match="BOSUN_ATTEMPT"):
        config.Settings.from_env({**BASE, contract.ENV_ATTEMPT: "two"})


def test_a_runner_without_its_environment_exits_permanently() -> None:
    assert app.main({}) == contract.ExitCode.FAILED_PERMANENT


def test_log_lines_are_json_with_identity_and_fields() -> None:
    stream = io.StringIO()
    logs.configure("INFO", stream, identity={"run": "r", "attempt": 1})
    logging.getLogger("bosun.runner.test").warning(
        "Denied tool call", extra={"fields": {"tool": "refund", "policy": "p"}}
    )
    line = json.loads(stream.getvalue())
    assert (line["msg"], line["level"], line["run"], line["tool"], line["policy"]) == (
        "Denied tool call",
        "WARNING",
        "r",
        "refund",
        "p",
    )
    logging.getLogger().handlers.clear()


def test_the_sleep_stops_for_sigterm_and_for_a_lost_lease() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(errors.Cancelled):
        app.interruptible_sleep(stop, lambda: None)(5)

    def lost() -> None:
        raise errors.LeaseLost("LeaseExpired")

    with pytest.raises(errors.LeaseLost):
        app.interruptible_sleep(threading.Event(), lost, slice_seconds=0.01)(5)


def test_spans_work_with_or_without_opentelemetry() -> None:
    with telemetry.span("chat m", {"gen_ai.request.model": "m"}) as span:
        span.set_attribute("gen_ai.usage.input_tokens", 3)
    telemetry.configure(None)
    try:
        with telemetry.span("chat m", {"gen_ai.request.model": "m", "unset": None}) as span:
            span.set_attribute("gen_ai.usage.input_tokens", 3)
    finally:
        telemetry._state["tracer"] = None


def test_termination_message_fits_what_the_kubelet_keeps(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "termination-log"
    target.write_text("")
    monkeypatch.setenv("BOSUN_TERMINATION_LOG", str(target))
    app._terminate_message("ModelError", 'ü"' * 5000)
    written = target.read_bytes()
    assert len(written) <= 4096
    report = json.loads(written)
    assert report["reason"] == "ModelError" and report["message"].startswith('ü"ü"')
    # No file provided (outside a container): nothing is written anywhere.
    monkeypatch.setenv("BOSUN_TERMINATION_LOG", str(tmp_path / "absent"))
    app._terminate_message("ModelError", "x")
    assert not (tmp_path / "absent").exists()


def test_what_leaves_the_pod_carries_no_secret_and_no_url_credentials() -> None:
    env = {
        "BOSUN_MODEL_API_KEY": "sk-live-123456",
        contract.secret_env_name("payments", "token"): "tok-abcdef",
        "BOSUN_RUN_NAME": "refund",  # not a secret: kept
    }
    text = (
        "https://user:pw@llm.example.com/v1/chat?key=sk-live-123456#x answered 401: "
        "bad key sk-live-123456 for refund, header tok-abcdef"
    )
    assert app.redact(text, env) == (
        "https://llm.example.com/v1/chat answered 401: "
        "bad key [redacted] for refund, header [redacted]"
    )
