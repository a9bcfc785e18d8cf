"""The vocabulary of the Run lifecycle: what the operator observed of a Run, and what to do.

A ``World`` is everything a decision may look at (frozen: the Run, its Agent and Tools, the
latest attempt's Job and pod, the Lease and when this process first saw it so, the settings);
a ``Plan`` is everything the executor does with the answer (frozen: the status to apply, the
actions in order, when to look again, and the facts it counts in metrics). ``Draft`` is the
plan a decision is making. ``lifecycle`` decides; ``runs`` observes and executes.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from collections.abc import Iterable, Mapping
from typing import Any

from bosun.controller import conditions, runnerclasses, runstatus
from bosun.controller import settings as settings_mod

__all__ = [
    "Action",
    "Create",
    "DeleteJob",
    "Draft",
    "Emit",
    "Finish",
    "LabelDeadLetter",
    "LabelForPool",
    "LeaseSighting",
    "Plan",
    "PodFacts",
    "World",
    "pod_facts",
]


# --- what was observed ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PodFacts:
    """What the newest pod of an attempt's Job says or left behind (all None: it has no pod)."""

    exit_code: int | None = None
    reason: str | None = None
    name: str | None = None
    message: str | None = None
    """The runner's termination message."""
    waiting_reason: str | None = None
    """Why the runner container is not running yet (the kubelet's waiting reason, such as
    CreateContainerConfigError for a missing Secret); None once it runs or ended."""
    waiting_message: str | None = None
    """The kubelet's message with ``waiting_reason``."""


@dataclasses.dataclass(frozen=True)
class LeaseSighting:
    """When this process first saw the Run's Lease say what it says now.

    As client-go's leader election does, a Lease's expiry is measured on this process's
    monotonic clock from the moment it last saw the Lease change, never from the runner's
    timestamps, so clock skew between nodes cannot shorten a Lease.
    """

    version: tuple[Any, ...]
    """(holderIdentity, renewTime, leaseTransitions)."""
    seen_at: float
    """Monotonic seconds."""


@dataclasses.dataclass(frozen=True)
class World:
    """Everything ``decide`` may look at for one Run, as the operator's store holds it."""

    run: Mapping[str, Any]
    agent: Mapping[str, Any] | None = None
    """The Agent of spec.agentRef; None while it does not exist."""
    tools: tuple[Mapping[str, Any], ...] = ()
    """The Agent's Tools that exist."""
    runner_class: runnerclasses.Resolved | None = None
    """The RunnerClass serving the Agent; None: the operator's built-in class."""
    namespace_labels: Mapping[str, str] | None = None
    """The Run's namespace's labels, passed to its runner for ClusterPolicies; None: unseen."""
    job: Mapping[str, Any] | None = None
    """The Job of the Run's latest attempt; None while it does not exist."""
    pod: PodFacts | None = None
    """The latest attempt's pod; None when not looked at (``Plan.look_at_pods`` asks: once its
    Job ended, and while its runner has not taken the Lease)."""
    lease: Mapping[str, Any] | None = None
    worker_left: float | None = None
    """For an attempt a pool worker claimed: seconds until that worker's own Lease expires
    (measured like ``sighting``; negative: expired, gone, or renewed at another epoch than the
    claim's). None while no worker claimed the active attempt."""
    sighting: LeaseSighting | None = None
    """The sighting of ``lease`` last returned in a Plan for this Run."""
    monotonic: float = 0.0
    """This process's monotonic clock when the world was observed."""
    peers: tuple[Mapping[str, Any], ...] = ()
    """Other Runs of the namespace with the Run's idempotencyKey."""
    settings: settings_mod.Settings = dataclasses.field(default_factory=settings_mod.Settings)
    rng: random.Random | None = None
    """Source of the retry jitter; None uses the ``random`` module."""


# --- what to do ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Create:
    """Create a child of the Run (AlreadyExists counts as done)."""

    obj: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class DeleteJob:
    """Delete an attempt's Job (and with it its pod)."""

    name: str


@dataclasses.dataclass(frozen=True)
class Emit:
    """Record an Event on the Run."""

    reason: str
    message: str
    warning: bool = False


@dataclasses.dataclass(frozen=True)
class LabelDeadLetter:
    """Set (True) or remove (False) the Run's dead-letter label."""

    on: bool


@dataclasses.dataclass(frozen=True)
class LabelForPool:
    """Label the Run's Lease and journal chunks with the Agent whose pool takes the Run over
    from Job-mode attempts (the pool-worker admission policy lets a worker write only what
    carries its Agent's label)."""

    agent: str


Action = Create | DeleteJob | Emit | LabelDeadLetter | LabelForPool


@dataclasses.dataclass(frozen=True)
class Finish:
    """The Run reached a final phase, for this reason."""

    phase: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do for one Run: actions in order, then the status write."""

    status: Mapping[str, Any] | None = None
    """The operator's part of the status to apply; None when it is unchanged."""
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None
    """Seconds until the Run should be decided again; None: on the next event only."""
    wants_admission: bool = False
    look_at_pods: bool = False
    """Decide again with ``World.pod`` observed: the latest attempt's Job has ended, or its
    runner has not taken the Lease yet (the pod may say why)."""
    ended: str | None = None
    """The outcome of the attempt this plan ends."""
    finished: Finish | None = None
    duplicate_of: str | None = None
    retry_delay: float | None = None
    """Seconds until the next attempt, when this plan schedules one."""
    dead_lettered: bool = False
    taken_over: bool = False
    """The active attempt was abandoned: its runner lost the Lease or never took it."""
    sighting: LeaseSighting | None = None
    """A new sighting of the Lease to remember."""
    admitted: int | None = None
    """The number of the attempt this plan admits."""

    @property
    def phase(self) -> str | None:
        """The phase the written status shows (None when nothing is written)."""
        return None if self.status is None else self.status.get("phase")

    def condition(self, kind: str) -> tuple[str, str] | None:
        """(status, reason) of condition ``kind`` in the written status."""
        found = conditions.find((self.status or {}).get("conditions"), kind)
        return None if found is None else (str(found["status"]), str(found["reason"]))


class Draft:
    """A plan being made: the Run's status being edited, the actions so far and the facts the
    executor needs (``Plan`` fields by name)."""

    def __init__(self, world: World, now: datetime.datetime) -> None:
        self.world = world
        self.now = now
        self.st = runstatus.RunStatus(world.run)
        self.actions: list[Action] = []
        self.facts: dict[str, Any] = {}

    def set(self, kind: str, value: bool | None, reason: str, message: str = "") -> None:
        self.st.set(kind, value, reason, message, at=self.now)

    def emit(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.actions.append(Emit(reason, message, warning))

    def plan(self, requeue_after: float | None = None, wants_admission: bool = False) -> Plan:
        return Plan(
            status=self.st.render() if self.st.changed() else None,
            actions=tuple(self.actions),
            requeue_after=requeue_after,
            wants_admission=wants_admission,
            **self.facts,
        )


def pod_facts(pods: Iterable[Mapping[str, Any]]) -> PodFacts:
    """Exit code, reason, name and termination message of the newest of a Job's pods."""
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    for pod in reversed(ordered):
        status = pod.get("status") or {}
        name = pod["metadata"]["name"]
        for container in status.get("containerStatuses") or ():
            terminated = (container.get("state") or {}).get("terminated")
            if terminated is not None:
                code = int(terminated["exitCode"])
                return PodFacts(code, status.get("reason"), name, terminated.get("message"))
        waiting: Mapping[str, Any] = {}
        for container in status.get("containerStatuses") or ():
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting:
                break
        return PodFacts(
            None,
            status.get("reason"),
            name,
            None,
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message"),
        )
    return PodFacts()
