"""The RunnerClass Kind: what a runner pod may be, defined by the cluster's administrators.

A RunnerClass is cluster-scoped and admin-owned, like RuntimeClass, IngressClass or
StorageClass: it fixes the runner's image, pull policy, ServiceAccount, placement, security
context, resource bounds and network egress. An Agent picks one by `spec.runner.className` and
may only choose resources within its bounds; who may use a class is RBAC (verb `use` on
`runnerclasses`, checked at admission). The class annotated
`runnerclass.bosun.dev/is-default-class: "true"` serves Agents that name none.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Self

import pydantic

from bosun.api import agent, common

__all__ = [
    "CIDR_PATTERN",
    "KIND",
    "METADATA_CIDRS",
    "Capabilities",
    "ContainerSecurityContext",
    "EgressPeer",
    "EgressPort",
    "EgressRule",
    "IPBlock",
    "PodSecurityContext",
    "RunnerClass",
    "RunnerClassSpec",
    "RunnerClassStatus",
    "SeccompProfile",
]

CIDR_PATTERN = r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
METADATA_CIDRS = ("169.254.169.254/32", "fd00:ec2::254/128")
"""Cloud instance-metadata addresses no runner pod may reach, whatever its class allows."""

_CIDR = Annotated[str, pydantic.Field(max_length=64, pattern=CIDR_PATTERN)]


def _network(text: str) -> str:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise ValueError(f"{text!r} is not a CIDR") from err
    return text


class SeccompProfile(common.Model):
    """The seccomp profile of the runner's processes."""

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]
    """`RuntimeDefault` (the container runtime's profile), `Localhost` or `Unconfined`."""
    localhost_profile: str | None = pydantic.Field(default=None, max_length=1024)
    """Path of the profile on the node, for type Localhost."""


class Capabilities(common.Model):
    """Linux capabilities added to or dropped from the runner container."""

    add: list[Annotated[str, pydantic.Field(max_length=64)]] = pydantic.Field(
        default_factory=list, max_length=64
    )
    """Capabilities to add."""
    drop: list[Annotated[str, pydantic.Field(max_length=64)]] = pydantic.Field(
        default_factory=list, max_length=64
    )
    """Capabilities to drop; the default drops ALL."""


class PodSecurityContext(common.Model):
    """Pod-level security settings, laid over the PodSecurity "restricted" defaults
    (runAsNonRoot, seccompProfile RuntimeDefault): a field set here replaces that default."""

    run_as_non_root: bool | None = None
    """Refuse to start a container whose user is root. Default: true."""
    run_as_user: int | None = pydantic.Field(default=None, ge=0)
    """UID the processes run as. Default: the image's user."""
    run_as_group: int | None = pydantic.Field(default=None, ge=0)
    """GID the processes run as. Default: the image's group."""
    fs_group: int | None = pydantic.Field(default=None, ge=0)
    """Group that owns mounted volumes."""
    supplemental_groups: list[Annotated[int, pydantic.Field(ge=0)]] = pydantic.Field(
        default_factory=list, max_length=32
    )
    """Extra groups of the processes."""
    seccomp_profile: SeccompProfile | None = None
    """Seccomp profile of the pod. Default: RuntimeDefault."""


class ContainerSecurityContext(common.Model):
    """Security settings of the runner container, laid over the PodSecurity "restricted"
    defaults (no privilege escalation, all capabilities dropped, non-root, read-only root
    filesystem): a field set here replaces that default."""

    privileged: bool | None = None
    """Run the container privileged. Default: false."""
    allow_privilege_escalation: bool | None = None
    """Whether a process may gain more privileges than its parent. Default: false."""
    read_only_root_filesystem: bool | None = None
    """Mount the root filesystem read-only (the runner writes only to /tmp). Default: true."""
    run_as_non_root: bool | None = None
    """Refuse to start when the user is root. Default: true."""
    run_as_user: int | None = pydantic.Field(default=None, ge=0)
    """UID the runner runs as. Default: the image's user."""
    run_as_group: int | None = pydantic.Field(default=None, ge=0)
    """GID the runner runs as. Default: the image's group."""
    capabilities: Capabilities | None = None
    """Capabilities to add and drop. Default: drop ALL."""
    seccomp_profile: SeccompProfile | None = None
    """Seccomp profile of the container. Default: the pod's."""


class IPBlock(common.Model):
    """A range of IP addresses. Cloud metadata addresses are always excepted."""

    cidr: _CIDR
    """The range, such as `10.0.0.0/8` or `0.0.0.0/0`."""
    except_: list[_CIDR] = pydantic.Field(default_factory=list, alias="except", max_length=64)
    """Ranges inside `cidr` that stay unreachable."""

    @pydantic.field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return _network(value)

    @pydantic.field_validator("except_")
    @classmethod
    def _excepted(cls, values: list[str]) -> list[str]:
        return [_network(value) for value in values]


class EgressPeer(common.Model):
    """One destination: an IP block, or pods chosen by namespace and pod labels."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.ipBlock) != (has(self.namespaceSelector) || has(self.podSelector))",
                "set either ipBlock or namespaceSelector/podSelector",
            )
        )
    )

    ip_block: IPBlock | None = None
    """Addresses the runner may reach."""
    namespace_selector: common.LabelSelector | None = None
    """Namespaces whose pods the runner may reach (with podSelector: those pods in them)."""
    pod_selector: common.LabelSelector | None = None
    """Pods the runner may reach (in its own namespace unless namespaceSelector is set)."""

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> Self:
        selectors = self.namespace_selector is not None or self.pod_selector is not None
        if (self.ip_block is not None) == selectors:
            raise ValueError("set either ipBlock or namespaceSelector/podSelector")
        return self


class EgressPort(common.Model):
    """A destination port (or range of ports)."""

    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """Protocol of the port."""
    port: int = pydantic.Field(ge=1, le=65535)
    """Port number."""
    end_port: int | None = pydantic.Field(default=None, ge=1, le=65535)
    """Last port of a range starting at `port`."""


class EgressRule(common.Model):
    """Traffic the runner may send: to any of `to` (empty: anywhere) on any of `ports`
    (empty: every port)."""

    to: list[EgressPeer] = pydantic.Field(default_factory=list, max_length=64)
    """Destinations; empty allows every destination but the cloud metadata addresses."""
    ports: list[EgressPort] = pydantic.Field(default_factory=list, max_length=64)
    """Ports; empty allows every port."""


class RunnerClassSpec(common.Model):
    """What every runner pod of an Agent using this class is, and how far an Agent may size
    it."""

    image: str = pydantic.Field(min_length=1, max_length=1024)
    """Runner image, such as `ghcr.io/bosun-dev/bosun-runner:0.1.0` (a digest pins it)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the kubelet pulls the image. Unset: Kubernetes' default for the tag."""
    service_account_name: common.DNSSubdomain | None = None
    """ServiceAccount of the runner pods; it must exist in every namespace that uses the class
    and hold at least the runner's permissions. Unset: the least-privilege account the
    operator makes for each Run."""
    node_selector: dict[str, Annotated[str, pydantic.Field(max_length=63)]] = pydantic.Field(
        default_factory=dict, max_length=32
    )
    """Node labels the runner pods must be scheduled onto."""
    tolerations: list[agent.Toleration] = pydantic.Field(default_factory=list, max_length=32)
    """Taints the runner pods tolerate."""
    pod_security_context: PodSecurityContext | None = None
    """Pod security settings over the PodSecurity "restricted" defaults."""
    security_context: ContainerSecurityContext | None = None
    """Runner container security settings over the PodSecurity "restricted" defaults."""
    default_resources: agent.ResourceRequirements | None = None
    """Resources of the runner container where the Agent sets none (per resource name).
    Unset: requests cpu 50m and memory 128Mi, limit memory 512Mi."""
    max_resources: dict[str, common.Quantity] = pydantic.Field(default_factory=dict, max_length=16)
    """Most of each resource (such as `cpu`, `memory`) a runner container may request or be
    limited to. An Agent asking for more is not Ready and its Runs wait; a bounded resource
    without a limit gets the maximum as its limit. Unset: no bound."""
    egress: list[EgressRule] | None = pydantic.Field(default=None, min_length=1, max_length=64)
    """Where runner pods may send traffic, as the egress rules of the NetworkPolicy the
    operator creates for each Run (include the API server, DNS and the model and tool
    endpoints). Cloud metadata addresses (169.254.169.254, fd00:ec2::254) are always blocked.
    Unset: everywhere but those."""


class RunnerClassStatus(common.Status):
    """What the operator observed: Ready is False while the class contradicts itself (its
    default resources exceed its maximum)."""

    default: bool | None = None
    """Whether the operator serves Agents that name no class with this one."""


class RunnerClass(common.Resource):
    """A class of runner pods: image, ServiceAccount, placement, security context, resource
    bounds and egress. Cluster-scoped, managed by administrators; Agents use one by name
    (`spec.runner.className`) when their author is allowed verb `use` on it."""

    kind: Literal["RunnerClass"] = "RunnerClass"
    """Kind of the object: RunnerClass."""
    spec: RunnerClassSpec
    """What the runner pods of this class are."""
    status: RunnerClassStatus = pydantic.Field(default_factory=RunnerClassStatus)
    """What the operator observed."""


KIND = common.KindInfo(
    model=RunnerClass,
    plural="runnerclasses",
    short_names=("rcls",),
    columns=(
        common.PrinterColumn("Image", ".spec.image", description="Runner image"),
        common.PrinterColumn(
            "Default", ".status.default", "boolean", "Serves Agents that name no class"
        ),
        common.READY_COLUMN,
        common.AGE_COLUMN,
    ),
    scope="Cluster",
)
