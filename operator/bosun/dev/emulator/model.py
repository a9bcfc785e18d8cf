"""The vocabulary of the node emulator's pod state machine: facts, memory, plans, outcomes.

Frozen types only, shared by the pure ``pods`` decisions, the ``status`` renderer, the process
``supervisor`` (which produces ``Process`` facts) and the ``kubelet`` executor (which carries
out a ``Plan``'s ``Action``s and feeds back an ``Outcome`` of preparing a pod's containers).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any

__all__ = [
    "FINAL_PHASES",
    "Action",
    "Container",
    "Discard",
    "EnvMissing",
    "EnvReady",
    "Exit",
    "ImageMissing",
    "Note",
    "Outcome",
    "Plan",
    "Pod",
    "PodAction",
    "PodState",
    "Process",
    "Signal",
    "Start",
]

Pod = dict[str, Any]
"""A pod as the API returns it, a plain dict."""

FINAL_PHASES = ("Succeeded", "Failed")


# --- facts about processes (from the supervisor) -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exit:
    """How one run of a container's process ended."""

    code: int
    started_at: datetime.datetime
    finished_at: datetime.datetime
    signal: int | None = None
    message: str = ""
    """What the process left in its termination-message file."""
    container_id: str = ""


@dataclasses.dataclass(frozen=True)
class Process:
    """What the supervisor knows of one container's process right now."""

    running: bool = False
    started_at: datetime.datetime | None = None
    container_id: str = ""
    exit: Exit | None = None
    """The ended run not yet discarded for a restart."""
    exits: int = 0
    """Exits reaped so far (a lost process counts, a start that failed does not)."""


# --- what the emulator remembers of a pod ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Container:
    """The emulator's memory of one container, beyond its current process."""

    name: str
    image: str
    restart_count: int = 0
    restart_at: float = 0.0
    waiting_reason: str | None = "ContainerCreating"
    waiting_message: str | None = None
    paused: bool = False
    last_terminated: Exit | None = None
    exits_seen: int = 0


@dataclasses.dataclass(frozen=True)
class PodState:
    """The emulator's memory of one pod bound to its Node."""

    start_time: datetime.datetime
    containers: tuple[Container, ...]
    phase: str = "Pending"
    reason: str | None = None
    message: str | None = None
    env: Mapping[str, Mapping[str, str]] | None = None
    """Each container's resolved environment; None until ``prepared``."""
    terminate_at: float | None = None
    kill_at: float | None = None
    token_refresh_at: float = 0.0
    fault_seen: str | None = None
    vanished: bool = False


# --- plans --------------------------------------------------------------------------------------


class PodAction(enum.Enum):
    """An action on the pod as a whole."""

    KILL_AND_WAIT = "kill-and-wait"
    """SIGKILL every process of the pod and wait until each has been reaped."""
    DELETE_NOW = "delete-now"
    """Delete the pod from the API with no grace: its processes are gone."""
    REFRESH_TOKEN = "refresh-token"
    """Request a fresh service-account token for the pod."""


@dataclasses.dataclass(frozen=True)
class Signal:
    """Send ``sig`` to every process group of the pod."""

    sig: int


@dataclasses.dataclass(frozen=True)
class Start:
    """Start a container's process."""

    container: str


@dataclasses.dataclass(frozen=True)
class Discard:
    """Drop a container's ended process; its exit is now the container's last state."""

    container: str


Action = PodAction | Signal | Start | Discard


@dataclasses.dataclass(frozen=True)
class Note:
    """A line worth logging about the pod: ``text`` then ``key=value`` fields."""

    text: str
    fields: tuple[tuple[str, object], ...] = ()


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to remember and do for a pod now."""

    state: PodState
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()
    step: bool = False
    """Go on to the containers (``prepared``, then ``decide_containers``)."""
    report: bool = False
    """Write the pod's status (``render``) afterwards."""


# --- preparing the containers' environment -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnvReady:
    """Every container's environment resolved (and the token written when asked for)."""

    env: Mapping[str, Mapping[str, str]]
    token_written: bool = False


@dataclasses.dataclass(frozen=True)
class ImageMissing:
    """A container's image is not on the node: it waits (``ErrImageNeverPull``)."""

    container: str
    message: str


@dataclasses.dataclass(frozen=True)
class EnvMissing:
    """A container's environment refers to something missing: it waits."""

    container: str
    message: str


Outcome = EnvReady | ImageMissing | EnvMissing
