"""What a Schedule does now: which fires create a Run, which are skipped or missed, which Runs
it cancels and which fire waits (a pure decision over the Schedule, its Runs and the time).

The nominal times due are those after the last one handled (``status.lastScheduleTime``, else
the Schedule's creation) whose moment (the nominal time plus the Schedule's jitter) has come.
Each due time is *on time* when it is the newest and at most ``ON_TIME_SECONDS`` late, a
*catch-up* when at most ``catchupWindowSeconds`` late, and otherwise missed; with
``startingDeadlineSeconds`` set, a fire later than that is missed either way. The fires that
remain meet the overlap policy, oldest first, and the Runs of the Schedule still running:

- ``Allow``: every fire creates its Run.
- ``Forbid``: a fire while one of its Runs is running is skipped.
- ``BufferOne``: a fire while one is running waits (at most one waits; later ones are skipped)
  and creates its Run once none is running, if still within ``startingDeadlineSeconds``.
- ``CancelOther``: the newest fire creates its Run and the running ones are cancelled; older
  fires of the same pass are skipped (they would be cancelled at once).

Every due time is handled exactly once: the decision moves ``lastScheduleTime`` past all of
them, whatever became of each. A Run's name comes from its nominal time (``cadence.run_name``),
so deciding twice (a restart, a second replica) never creates a Run twice.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Literal

from bosun.controller import cadence as cadence_mod

__all__ = [
    "COUNT_LIMIT",
    "ON_TIME_SECONDS",
    "Decision",
    "OverlapPolicy",
    "Rules",
    "decide",
]

OverlapPolicy = Literal["Allow", "Forbid", "BufferOne", "CancelOther"]

ON_TIME_SECONDS = 10.0
"""How late the newest due fire may be and still count as on time (the operator was busy, or
restarted), without any catch-up window."""

COUNT_LIMIT = 100_000
"""Most missed times counted one by one in a decision; past it, everything up to the oldest
time that could still fire is handled without counting further (a ``* * * * *`` Schedule whose
operator was away for months)."""


@dataclasses.dataclass(frozen=True)
class Rules:
    """What the Schedule's spec says about firing."""

    policy: OverlapPolicy = "Allow"
    catchup_window_seconds: float = 0.0
    starting_deadline_seconds: float | None = None
    jitter_seconds: int = 0
    """This Schedule's fixed delay after each nominal time (``cadence.jitter``)."""


@dataclasses.dataclass(frozen=True)
class Decision:
    create: tuple[datetime.datetime, ...] = ()
    """Nominal times whose Runs to create now, oldest first."""
    cancel: tuple[str, ...] = ()
    """Names of the Schedule's running Runs to cancel (CancelOther)."""
    buffered: datetime.datetime | None = None
    """The fire waiting for the running Run to end (BufferOne), kept in status."""
    skipped: int = 0
    """Fires the overlap policy dropped."""
    missed: int = 0
    """Fires too late to start (outside the catch-up window or the starting deadline)."""
    last: datetime.datetime | None = None
    """The newest nominal time handled: the next ``lastScheduleTime``."""
    next_time: datetime.datetime | None = None
    """The next nominal time after ``last``."""
    wake: datetime.datetime | None = None
    """When to decide again: the next fire's moment (nominal time plus jitter)."""


def _late(nominal: datetime.datetime, now: datetime.datetime, rules: Rules) -> float:
    moment = nominal + datetime.timedelta(seconds=rules.jitter_seconds)
    return (now - moment).total_seconds()


def _within_deadline(late: float, rules: Rules) -> bool:
    deadline = rules.starting_deadline_seconds
    return deadline is None or late <= deadline


def decide(
    cadence: cadence_mod.Cadence,
    rules: Rules,
    *,
    since: datetime.datetime,
    now: datetime.datetime,
    running: Sequence[str] = (),
    buffered: datetime.datetime | None = None,
) -> Decision:
    """What to do at ``now`` for a Schedule whose last handled time (or creation) is ``since``,
    whose Runs ``running`` have not finished, and whose waiting fire is ``buffered``."""
    shift = datetime.timedelta(seconds=rules.jitter_seconds)
    horizon = now - shift  # nominal times up to here have come
    # Older than the widest window, a due time can only be missed: count those, up to a bound.
    reach = datetime.timedelta(seconds=max(rules.catchup_window_seconds, ON_TIME_SECONDS))
    cutoff = max(since, horizon - reach)
    missed = 0
    last: datetime.datetime | None = None
    for nominal in cadence.between(since, cutoff):
        missed += 1
        last = nominal
        if missed >= COUNT_LIMIT:
            last = cutoff  # handled up to here, without naming each
            break
    due = list(cadence.between(cutoff, horizon))
    candidates: list[datetime.datetime] = []
    for index, nominal in enumerate(due):
        late = _late(nominal, now, rules)
        newest = index == len(due) - 1
        timely = (newest and late <= ON_TIME_SECONDS) or late <= rules.catchup_window_seconds
        if timely and _within_deadline(late, rules):
            candidates.append(nominal)
        else:
            missed += 1
    if due:
        last = due[-1]
    create: list[datetime.datetime] = []
    cancel: tuple[str, ...] = ()
    skipped = 0
    busy = len(running) > 0
    waiting = buffered
    if waiting is not None and not busy:
        if _within_deadline(_late(waiting, now, rules), rules):
            create.append(waiting)
            busy = rules.policy != "Allow"
        else:
            missed += 1
        waiting = None
    if rules.policy == "Allow":
        create.extend(candidates)
    elif rules.policy == "CancelOther":
        if candidates:
            skipped += len(candidates) - 1
            create.append(candidates[-1])
            cancel = tuple(running)
    else:
        for nominal in candidates:
            if not busy:
                create.append(nominal)
                busy = True
            elif rules.policy == "BufferOne" and waiting is None:
                waiting = nominal
            else:
                skipped += 1
    upcoming = cadence.after(last or since)
    return Decision(
        create=tuple(create),
        cancel=cancel,
        buffered=waiting,
        skipped=skipped,
        missed=missed,
        last=last,
        next_time=upcoming,
        wake=upcoming + shift,
    )
