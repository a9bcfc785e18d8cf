"""Bosun's Kubernetes access layer without a cluster: credentials from kubeconfigs and pods,
errors by type from the API server's Status, requests as sent, and throttling retried."""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

import httpx
import pytest
import yaml

from bosun import constants, kube, retry

CA = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"


def _kubeconfig(tmp_path: pathlib.Path, user: dict[str, Any], **context: str) -> pathlib.Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "here",
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u", **context}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(CA.encode()).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_kubeconfig_with_certificate_data(tmp_path: pathlib.Path) -> None:
    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
    }
    creds = kube.load(_kubeconfig(tmp_path, user, namespace="team-a"))
    assert creds.server == "https://127.0.0.1:6443"
    assert (creds.ca_pem, creds.client_cert_pem, creds.client_key_pem) == (CA, "CERT", "KEY")
    assert creds.namespace == "team-a"
    assert creds.bearer_token() is None
    assert "KEY" not in repr(creds)


def test_a_kubeconfig_with_files_relative_to_itself_and_a_token(tmp_path: pathlib.Path) -> None:
    (tmp_path / "tls.crt").write_text("CERT")
    (tmp_path / "tls.key").write_text("KEY")
    user = {"client-certificate": "tls.crt", "client-key": "tls.key", "token": "s3cret"}
    creds = kube.load(_kubeconfig(tmp_path, user))
    assert (creds.client_cert_pem, creds.client_key_pem) == ("CERT", "KEY")
    assert creds.bearer_token() == "s3cret"
    assert "s3cret" not in repr(creds)
    assert creds.namespace is None


@pytest.mark.parametrize("unsupported", ["exec", "auth-provider", "username"])
def test_unsupported_logins_are_refused_by_name(tmp_path: pathlib.Path, unsupported: str) -> None:
    with pytest.raises(kube.ConfigError, match=unsupported):
        kube.load(_kubeconfig(tmp_path, {unsupported: {"command": "x"}}))


def test_a_missing_kubeconfig_or_context_is_a_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(kube.ConfigError, match="does not exist"):
        kube.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(kube.ConfigError, match="no context named 'gone'"):
        kube.load(broken)


def test_in_a_pod_the_service_account_is_used_and_its_token_reread(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "ca.crt").write_text(CA)
    (tmp_path / "namespace").write_text("team-b")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(constants.EMULATOR_SERVICEACCOUNT_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    creds = kube.load()
    assert (creds.server, creds.ca_pem, creds.namespace) == ("https://10.0.0.1:443", CA, "team-b")
    assert creds.bearer_token() == "first"
    (tmp_path / "token").write_text("rotated")
    creds._cache["read_at"] -= 3600  # as if the re-read interval had passed
    assert creds.bearer_token() == "rotated"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(kube.ConfigError, match="not running in a pod"):
        kube.load()


def _status(code: int, reason: str, message: str) -> bytes:
    body = {"kind": "Status", "status": "Failure", "reason": reason, "message": message}
    return json.dumps({**body, "code": code}).encode()


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (404, "NotFound", kube.NotFound),
        (409, "AlreadyExists", kube.AlreadyExists),
        (409, "Conflict", kube.Conflict),
        (403, "Forbidden", kube.Forbidden),
        (422, "Invalid", kube.Invalid),
        (500, "InternalError", kube.ApiError),
    ],
)
def test_refusals_become_errors_by_type(code: int, reason: str, kind: type[kube.ApiError]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, content=_status(code, reason, "spec.x: Invalid value"))

    rest = kube.Rest(
        kube.Credentials(server="https://api.test"), transport=httpx.MockTransport(answer)
    )
    with pytest.raises(kube.ApiError) as caught:
        rest.request("GET", "/api/v1/namespaces/a/configmaps/b")
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.reason) == (code, reason)
    assert caught.value.message == "spec.x: Invalid value"


def test_requests_carry_the_token_query_and_content_type() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"kind": "ConfigMap", "metadata": {"name": "b"}})

    creds = kube.Credentials(server="https://api.test", token="t0k")
    rest = kube.Rest(creds, transport=httpx.MockTransport(answer))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "a"}}
    assert rest.apply(body, manager="bosun-test")["metadata"]["name"] == "b"
    request = seen[0]
    assert request.method == "PATCH"
    assert request.url.path == "/api/v1/namespaces/a/configmaps/b"
    assert dict(request.url.params) == {"fieldManager": "bosun-test", "force": "true"}
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.headers["Content-Type"] == kube.APPLY_PATCH
    assert json.loads(request.content) == body


def test_get_and_delete_of_a_missing_object_and_create_of_an_existing_one() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(409, content=_status(409, "AlreadyExists", "exists"))
        return httpx.Response(404, content=_status(404, "NotFound", "gone"))

    rest = kube.Rest(
        kube.Credentials(server="https://api.test"), transport=httpx.MockTransport(answer)
    )
    assert rest.get("v1", "configmaps", "a", "b") is None
    assert rest.delete("v1", "configmaps", "a", "b") is False
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "a"}}
    assert rest.create(obj) is None


def test_throttling_is_retried_after_the_servers_wait_and_then_given_up() -> None:
    answers = iter([429, 503, 200])
    slept: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        code = next(answers)
        if code == 200:
            return httpx.Response(200, json={"items": []})
        return httpx.Response(code, headers={"Retry-After": "1"}, content=b"{}")

    rest = kube.Rest(
        kube.Credentials(server="https://api.test"),
        transport=httpx.MockTransport(answer),
        sleep=slept.append,
    )
    assert rest.list("v1", "configmaps", "a") == []
    assert len(slept) == 2 and all(s >= 1.0 for s in slept)

    def always(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "1"}, content=b"{}")

    slept.clear()
    rest = kube.Rest(
        kube.Credentials(server="https://api.test"),
        transport=httpx.MockTransport(always),
        sleep=slept.append,
    )
    with pytest.raises(kube.ApiError) as caught:
        rest.list("v1", "configmaps", "a")
    assert caught.value.status == 429
    assert len(slept) == retry.API_THROTTLED.max_attempts - 1  # a wait between tries


def test_a_429_without_retry_after_and_an_unreachable_server_fail_at_once() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, content=b"{}")

    slept: list[float] = []
    rest = kube.Rest(
        kube.Credentials(server="https://api.test"),
        transport=httpx.MockTransport(answer),
        sleep=slept.append,
    )
    with pytest.raises(kube.ApiError):
        rest.list("v1", "configmaps", "a")
    assert slept == []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    rest = kube.Rest(
        kube.Credentials(server="https://api.test"), transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(kube.Unavailable) as unreachable:
        rest.list("v1", "configmaps", "a")
    assert unreachable.value.status == 0


def test_kubeconfig_errors_never_quote_its_lines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("users:\n- user:\n    token: s3cret-t0ken: [unclosed\n")
    with pytest.raises(kube.ConfigError) as caught:
        kube.load(path)
    assert "s3cret" not in str(caught.value)
    assert "line 3" in str(caught.value)


def test_half_a_client_certificate_and_quoted_booleans(tmp_path: pathlib.Path) -> None:
    user = {"client-certificate-data": base64.b64encode(b"CERT").decode()}
    with pytest.raises(kube.ConfigError, match="without the other"):
        kube.load(_kubeconfig(tmp_path, user))
    path = _kubeconfig(tmp_path, {"token": "t"})
    config = yaml.safe_load(path.read_text())
    config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = "false"
    path.write_text(yaml.safe_dump(config))
    assert kube.load(path).insecure is False


def test_a_pod_without_the_cluster_ca_is_refused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("t")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(constants.EMULATOR_SERVICEACCOUNT_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(kube.ConfigError, match="cluster CA"):
        kube.load()
