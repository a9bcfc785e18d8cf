"""Webhooks on the real control plane and real HTTP: `bosun gateway` as a process, running as a
user bound to exactly the chart's gateway Role (its rules rendered by the real helm), receives
signed deliveries and creates their Runs.

Each refusal is checked twice: its status code, and that no Run was created. Exactly once is
checked where it matters: 20 concurrent sends of one delivery make one Run, and a gateway
SIGKILLed mid-burst has stored the Run of every delivery it answered 202."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import pathlib
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from bosun import constants, contract, kube
from bosun.api import webhook as webhook_api
from bosun.controller import conditions
from bosun.dev import cluster, testing
from bosun.dev import gateway as gateway_kit
from bosun.gateway import auth
from chart import chartkit

pytestmark = pytest.mark.cluster

API = constants.API_VERSION
KEY = b"s3cret-signing-key"
TOKEN = "t0ken-for-bearer"
GATEWAY_USER = "bosun-gateway@bosun.test"
Obj = dict[str, Any]


@pytest.fixture
def rest(bosun_crds: testing.ControlPlaneHandle) -> kube.Rest:
    return bosun_crds.rest()


def _grant_chart_rules(control_plane: testing.ControlPlaneHandle, namespace: str) -> None:
    """The chart's gateway Role for ``namespace`` (secretNames: the hooks' key), bound to the
    test's gateway user instead of the chart's ServiceAccount."""
    text = chartkit.template_text(
        sets=[
            "gateway.enabled=true",
            f"operator.watchNamespaces={{{namespace}}}",
            "gateway.secretNames={hook-key,hook-token,github-webhook}",
        ]
    )
    role = next(
        doc
        for doc in chartkit.parse(text)
        if doc["kind"] == "Role" and doc["metadata"]["name"].endswith("-gateway")
    )
    role["metadata"] = {"name": "test-gateway", "namespace": namespace}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "test-gateway", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "test-gateway",
        },
        "subjects": [{"kind": "User", "name": GATEWAY_USER}],
    }
    rest = control_plane.rest()
    rest.create(role)
    rest.create(binding)


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Closes the test's HTTP clients, whatever happens."""
    with contextlib.ExitStack() as closing:
        yield closing


@pytest.fixture
def gateways(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
) -> Iterator[list[gateway_kit.GatewayProcess]]:
    """Gateways a test starts (as the chart's gateway rules), stopped whatever happens; their
    logs printed when the test fails."""
    _grant_chart_rules(control_plane, namespace)
    started: list[gateway_kit.GatewayProcess] = []
    try:
        yield started
    finally:
        for each in started:
            each.stop()


def _start(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    gateways: list[gateway_kit.GatewayProcess],
    **env: str,
) -> gateway_kit.GatewayProcess:
    logs = control_plane.folder / "logs" if control_plane.folder else None
    assert logs is not None
    process = gateway_kit.GatewayProcess(
        control_plane.user_kubeconfig(GATEWAY_USER),
        (namespace,),
        logs / f"gateway-{namespace}-{len(gateways)}.log",
        env=env,
    )
    gateways.append(process)
    process.start()
    return process


def _secrets(rest: kube.Rest, namespace: str) -> None:
    for name, key, value in (("hook-key", "key", KEY), ("hook-token", "token", TOKEN.encode())):
        rest.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "data": {key: base64.b64encode(value).decode()},
            }
        )


def _webhook(rest: kube.Rest, namespace: str, name: str = "issues", **spec: Any) -> Obj:
    body: Obj = {
        "auth": {"hmac": {"secretRef": {"name": "hook-key", "key": "key"}}},
        "input": "'Triage issue #' + string(body.issue.number) + ': ' + body.issue.title",
        "filter": "body.action == 'opened'",
        "runTemplate": {
            "metadata": {"labels": {"team": "support"}},
            "spec": {"agentRef": {"name": "triage"}, "priority": 5},
        },
        **spec,
    }
    body = {k: v for k, v in body.items() if v is not None}
    made = rest.create(
        {
            "apiVersion": API,
            "kind": "Webhook",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }
    )
    assert made is not None
    return made


def _runs(rest: kube.Rest, namespace: str) -> list[Obj]:
    return rest.list(API, "runs", namespace)


def _issue(number: int = 7, action: str = "opened") -> Obj:
    return {"action": action, "issue": {"number": number, "title": "Login fails"}}


def _body_identity(payload: Obj) -> str:
    return auth.identity(
        {"hmac": {}}, "", json.dumps(payload).encode()
    )  # what a body-signed delivery's Run is named after


def _raw_status(gateway: gateway_kit.GatewayProcess, request: bytes) -> int:
    """The status of one hand-framed HTTP request (what httpx would never send)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request)
        return int(sock.recv(4096).split(b" ", 2)[1])


def _hook_url(gateway: gateway_kit.GatewayProcess, namespace: str, name: str = "issues") -> str:
    return f"{gateway.url}/hooks/{namespace}/{name}"


def test_a_signed_delivery_creates_one_run_and_redeliveries_answer_with_it(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    gateways: list[gateway_kit.GatewayProcess],
    stack: contextlib.ExitStack,
) -> None:
    _secrets(rest, namespace)
    hook = _webhook(rest, namespace)
    gateway = _start(control_plane, namespace, gateways)
    sender = stack.enter_context(gateway_kit.Sender(_hook_url(gateway, namespace), KEY))

    first = sender.send(_issue(), "delivery-1")
    assert first.status_code == 202, first.text
    name = first.json()["run"]
    # Only the body is signed (GitHub's scheme), so the body names the Run.
    assert name == contract.webhook_run_name("issues", _body_identity(_issue()))
    run = rest.get(API, "runs", namespace, name)
    assert run is not None
    assert run["spec"]["input"] == "Triage issue #7: Login fails"
    assert run["spec"]["agentRef"] == {"name": "triage"}
    assert run["spec"]["priority"] == 5
    assert run["spec"]["idempotencyKey"] == "webhook/issues/delivery-1"
    assert run["metadata"]["labels"] == {"team": "support", constants.LABEL_WEBHOOK: "issues"}
    assert run["metadata"]["annotations"][contract.ANNOTATION_DELIVERY] == "delivery-1"
    assert run["metadata"]["ownerReferences"][0]["uid"] == hook["metadata"]["uid"]

    # One delivery sent 20 times at once: one Run, and 19 answers naming it.
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: sender.send(_issue(8), "delivery-2"), range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 19 + [202], [a.text for a in answers]
    second = contract.webhook_run_name("issues", _body_identity(_issue(8)))
    assert {a.json()["run"] for a in answers} == {second}
    assert len(_runs(rest, namespace)) == 2

    again = sender.send(_issue(), "delivery-1")
    assert again.status_code == 200 and again.json() == {
        "namespace": namespace, "run": name, "created": False
    }  # fmt: skip
    # A captured delivery replayed under an id of the attacker's choosing: the same Run.
    replayed = sender.send(_issue(), "forged-id")
    assert replayed.status_code == 200 and replayed.json()["run"] == name

    # The filter: false answers 204 and creates nothing.
    dropped = sender.send(_issue(action="closed"), "delivery-3")
    assert dropped.status_code == 204
    assert len(_runs(rest, namespace)) == 2

    # The counts reach the Webhook's status (flushed every few seconds).
    def counted() -> Obj | None:
        status = (rest.get(API, "webhooks", namespace, "issues") or {}).get("status") or {}
        return status if status.get("duplicates") == 21 and status.get("filtered") == 1 else None

    status = testing.until(counted, 30, 0.5, "the delivery counts in the Webhook's status")
    assert status["accepted"] == 2
    assert status["lastRun"] in {name, second}
    metrics = httpx.get(gateway.metrics_url, timeout=5).text
    assert 'bosun_webhook_requests_total{outcome="accepted"} 2.0' in metrics
    assert 'bosun_webhook_requests_total{outcome="duplicate"} 21.0' in metrics


def test_refusals_get_their_status_and_create_nothing(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    gateways: list[gateway_kit.GatewayProcess],
    stack: contextlib.ExitStack,
) -> None:
    _secrets(rest, namespace)
    _webhook(rest, namespace, maxBodyBytes=2048)
    _webhook(
        rest,
        namespace,
        "stamped",
        auth={
            "hmac": {
                "secretRef": {"name": "hook-key", "key": "key"},
                "timestampHeader": "X-Bosun-Timestamp",
                "toleranceSeconds": 60,
            }
        },
    )
    _webhook(rest, namespace, "limited", rateLimit={"requestsPerSecond": 0.01, "burst": 2})
    _webhook(rest, namespace, "unkeyed", auth={"hmac": {"secretRef": {"name": "nope", "key": "k"}}})
    gateway = _start(control_plane, namespace, gateways)
    sender = stack.enter_context(gateway_kit.Sender(_hook_url(gateway, namespace), KEY))
    body = stack.enter_context(httpx.Client(timeout=10))

    def code(response: httpx.Response, expected: int) -> Obj:
        assert response.status_code == expected, response.text
        return response.json() if response.content else {}

    assert "does not match" in code(sender.send(_issue(), key=b"wrong-key"), 401)["error"]
    no_signature = body.post(
        _hook_url(gateway, namespace),
        content=b"{}",
        headers={"Content-Type": "application/json", "X-Bosun-Delivery": "d"},
    )
    assert "missing X-Bosun-Signature-256" in code(no_signature, 401)["error"]
    tampered = sender.send(None, raw=b'{"action": "opened"}', headers={
        "X-Bosun-Signature-256": auth.sign(KEY, b'{"action": "closed"}')})  # fmt: skip
    code(tampered, 401)
    assert "over 2048 bytes" in code(sender.send({"pad": "x" * 4096}), 413)["error"]
    form = sender.send(
        None, raw=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "application/json" in code(form, 415)["error"]
    assert "not JSON" in code(sender.send(None, raw=b"{not json"), 415)["error"]
    failing = code(sender.send({"action": "opened", "issue": {"number": 1}}), 422)["error"]
    assert failing.startswith("input failed to evaluate") and "title" in failing
    no_id = body.post(
        _hook_url(gateway, namespace),
        content=b"{}",
        headers={
            "Content-Type": "application/json",
            "X-Bosun-Signature-256": auth.sign(KEY, b"{}"),
        },
    )
    assert "X-Bosun-Delivery" in code(no_id, 400)["error"]
    assert code(body.post(f"{gateway.url}/hooks/{namespace}/absent", content=b"{}"), 404)
    assert code(body.post(f"{gateway.url}/hooks/other-namespace/issues", content=b"{}"), 404)
    assert code(body.get(_hook_url(gateway, namespace)), 405)

    stamped = stack.enter_context(gateway_kit.Sender(_hook_url(gateway, namespace, "stamped"), KEY))
    payload = b'{"action": "opened", "issue": {"number": 3, "title": "t"}}'
    old = str(int(time.time()) - 3600)
    stale = stamped.send(
        None,
        "s-1",
        raw=payload,
        headers={
            "X-Bosun-Timestamp": old,
            "X-Bosun-Signature-256": auth.sign(KEY, payload, old, "s-1"),
        },
    )
    assert "over the tolerance" in code(stale, 401)["error"]
    unsigned_stamp = stamped.send(
        None, raw=payload, headers={"X-Bosun-Timestamp": str(int(time.time()))}
    )
    code(unsigned_stamp, 401)  # the body alone signed: the timestamp is not covered
    now = str(int(time.time()))
    signed = {
        "X-Bosun-Timestamp": now,
        "X-Bosun-Signature-256": auth.sign(KEY, payload, now, "s-2"),
    }
    fresh = stamped.send(None, "s-2", raw=payload, headers=signed)
    assert code(fresh, 202)["run"] == contract.webhook_run_name("stamped", "s-2")
    other_id = stamped.send(None, "s-3", raw=payload, headers=signed)
    assert "does not match" in code(other_id, 401)["error"]  # the id is signed too

    # Ambiguous framing is refused and the connection closed: nothing is read as a request.
    for framing in (
        b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
    ):
        start = f"POST /hooks/{namespace}/issues HTTP/1.1\r\nHost: x\r\n".encode()
        request = start + framing + b"Content-Type: application/json\r\n\r\n{}"
        assert _raw_status(gateway, request) == 400

    limited = stack.enter_context(gateway_kit.Sender(_hook_url(gateway, namespace, "limited"), KEY))
    assert [limited.send(_issue(n)).status_code for n in range(2)] == [202, 202]
    over = limited.send(_issue(3))
    code(over, 429)
    assert int(over.headers["Retry-After"]) >= 1

    unkeyed = stack.enter_context(gateway_kit.Sender(_hook_url(gateway, namespace, "unkeyed"), KEY))
    code(unkeyed.send(_issue()), 503)
    assert "may not read Secret" in gateway.log() or "not found" in gateway.log()

    names = sorted(r["metadata"]["name"] for r in _runs(rest, namespace))
    assert len(names) == 3, names  # the fresh stamped delivery and two within the rate limit


def test_bearer_tokens_and_github_headers(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    gateways: list[gateway_kit.GatewayProcess],
    stack: contextlib.ExitStack,
) -> None:
    _secrets(rest, namespace)
    bearer = {"bearer": {"secretRef": {"name": "hook-token", "key": "token"}}}
    _webhook(rest, namespace, "alerts", auth=bearer, input="'Alert: ' + body.alert", filter=None)
    _webhook(
        rest,
        namespace,
        "github",
        auth={"hmac": {"secretRef": {"name": "hook-key", "key": "key"},
                       "signatureHeader": "X-Hub-Signature-256"}},
        deliveryIdHeader="X-GitHub-Delivery",
    )  # fmt: skip
    gateway = _start(control_plane, namespace, gateways)
    client = stack.enter_context(httpx.Client(timeout=10))
    url = _hook_url(gateway, namespace, "alerts")
    sent = {"Content-Type": "application/json", "X-Bosun-Delivery": "a-1"}
    wrong = client.post(url, json={"alert": "disk"}, headers={**sent, "Authorization": "Bearer no"})
    assert wrong.status_code == 401
    assert client.post(url, json={"alert": "disk"}, headers=sent).status_code == 401
    right = client.post(
        url, json={"alert": "disk"}, headers={**sent, "Authorization": f"Bearer {TOKEN}"}
    )
    assert right.status_code == 202, right.text
    run = rest.get(API, "runs", namespace, right.json()["run"])
    assert run is not None and run["spec"]["input"] == "Alert: disk"

    github = stack.enter_context(gateway_kit.Sender(
        _hook_url(gateway, namespace, "github"), KEY,
        signature_header="X-Hub-Signature-256", delivery_header="X-GitHub-Delivery",
    ))  # fmt: skip
    made = github.send(_issue(42), str(uuid.uuid4()))
    assert made.status_code == 202, made.text
    assert len(_runs(rest, namespace)) == 2


def test_the_github_example_triages_a_new_issue_and_ignores_the_rest(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    gateways: list[gateway_kit.GatewayProcess],
    stack: contextlib.ExitStack,
) -> None:
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "github-triage"
    control_plane.kubectl("apply", "-n", namespace, "-f", str(example))
    secret = base64.b64encode(KEY).decode()
    rest.merge_patch("v1", "secrets", namespace, "github-webhook", {"data": {"secret": secret}})
    gateway = _start(control_plane, namespace, gateways)
    github = stack.enter_context(
        gateway_kit.Sender(
            _hook_url(gateway, namespace, "github-issues"), KEY,
            signature_header="X-Hub-Signature-256", delivery_header="X-GitHub-Delivery",
        )
    )  # fmt: skip
    opened = {
        "action": "opened",
        "issue": {"number": 1347, "title": "Login fails on Safari", "body": None},
        "repository": {"full_name": "octo-org/webshop"},
    }
    ping = github.send({"zen": "Keep it logically awesome."}, headers={"X-GitHub-Event": "ping"})
    assert ping.status_code == 204
    made = github.send(opened, "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                       headers={"X-GitHub-Event": "issues"})  # fmt: skip
    assert made.status_code == 202, made.text
    run = rest.get(API, "runs", namespace, made.json()["run"])
    assert run is not None
    assert run["spec"]["agentRef"] == {"name": "issue-triage"}
    assert run["spec"]["input"] == (
        "Triage issue #1347 in octo-org/webshop: Login fails on Safari\n\n(no description)"
    )
    assert run["metadata"]["labels"]["source"] == "github"


def test_a_gateway_killed_mid_burst_loses_no_delivery_it_accepted(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    gateways: list[gateway_kit.GatewayProcess],
    stack: contextlib.ExitStack,
) -> None:
    total = testing.scenario_size(60, 400)
    _secrets(rest, namespace)
    _webhook(rest, namespace)
    gateway = _start(control_plane, namespace, gateways)
    sender = stack.enter_context(gateway_kit.Sender(_hook_url(gateway, namespace), KEY, timeout=10))
    deliveries = [f"burst-{n}" for n in range(total)]
    answered: dict[str, int] = {}

    def send(delivery: str) -> None:
        try:
            answered[delivery] = sender.send(_issue(int(delivery[6:])), delivery).status_code
        except httpx.HTTPError:
            answered[delivery] = 0  # no answer: the sender would retry

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, d) for d in deliveries]
        testing.until(lambda: len(answered) >= total // 3, 60, 0.01, "a third answered")
        gateway.kill()
        concurrent.futures.wait(futures)
    accepted = {d for d, status in answered.items() if status == 202}
    assert accepted and len(accepted) < total, answered
    stored = {
        (r["metadata"].get("annotations") or {}).get(contract.ANNOTATION_DELIVERY)
        for r in _runs(rest, namespace)
    }
    assert accepted <= stored, f"answered 202 but not stored: {sorted(accepted - stored)}"

    # The senders retry everything not acknowledged on a new replica: each delivery once.
    second = _start(control_plane, namespace, gateways)
    retry = stack.enter_context(gateway_kit.Sender(_hook_url(second, namespace), KEY))
    for delivery in deliveries:
        status = retry.send(_issue(int(delivery[6:])), delivery).status_code
        assert status == (200 if delivery in stored else 202), delivery
    runs = _runs(rest, namespace)
    assert len(runs) == total
    assert {r["metadata"]["annotations"][contract.ANNOTATION_DELIVERY] for r in runs} == set(
        deliveries
    )


def test_the_api_server_unreachable_answers_503(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    tmp_path: Any,
    gateways: list[gateway_kit.GatewayProcess],
    stack: contextlib.ExitStack,
) -> None:
    config = yaml.safe_load(control_plane.user_kubeconfig(GATEWAY_USER).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{cluster.free_port()}"
    broken = tmp_path / "unreachable.kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    logs = control_plane.folder / "logs" if control_plane.folder else tmp_path
    process = gateway_kit.GatewayProcess(broken, (namespace,), logs / "gateway-unreachable.log")
    gateways.append(process)
    with pytest.raises(RuntimeError, match="not ready"):
        process.start(wait=3)  # never ready: the API server does not answer
    sender = stack.enter_context(gateway_kit.Sender(_hook_url(process, namespace), KEY))
    answer = sender.send(_issue())
    assert answer.status_code == 503 and answer.headers["Retry-After"]


def test_the_operator_reports_a_webhook_whose_cel_does_not_compile(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    operator: testing.OperatorProcess,
) -> None:
    _webhook(rest, namespace, "good")
    _webhook(rest, namespace, "bad", input="'Issue ' + body.issue.(")

    def ready(name: str) -> Obj | None:
        found = rest.get(API, "webhooks", namespace, name) or {}
        return conditions.find((found.get("status") or {}).get("conditions"), "Ready")

    bad = testing.until(lambda: ready("bad"), 60, 0.2, "the bad Webhook's Ready condition")
    assert bad["status"] == "False" and bad["reason"] == "InvalidCEL"
    assert bad["message"].startswith("spec.input does not compile at line 1")
    good = testing.until(lambda: ready("good"), 60, 0.2, "the good Webhook's Ready condition")
    assert good["status"] == "True", good


def test_invalid_webhooks_are_rejected_at_apply(rest: kube.Rest, namespace: str) -> None:
    cases = {
        "both": ({"hmac": {"secretRef": {"name": "a", "key": "k"}},
                  "bearer": {"secretRef": {"name": "a", "key": "k"}}},
                 "exactly one of hmac or bearer"),
        "neither": ({}, "exactly one of hmac or bearer"),
    }  # fmt: skip
    for name, (method, message) in cases.items():
        with pytest.raises(kube.Invalid, match=message):
            _webhook(rest, namespace, name, auth=method)
    with pytest.raises(kube.Invalid, match=f"at most {webhook_api.NAME_MAX} characters"):
        _webhook(rest, namespace, "x" * (webhook_api.NAME_MAX + 1))
