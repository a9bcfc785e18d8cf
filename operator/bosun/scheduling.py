"""What ``bosun schedule`` does: fire a Schedule now, or create the Runs of a past range of its
fire times, under the user's own identity (the CLI's kubeconfig), as ``ops`` does for Runs."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from bosun import constants, contract, kube, ops
from bosun.controller import cadence

__all__ = ["BACKFILL_MAX", "backfill_schedule", "get_schedule", "trigger_schedule"]

BACKFILL_MAX = 1000
"""Most fire times one backfill creates Runs for."""


def get_schedule(rest: kube.Rest, namespace: str, name: str) -> ops.Obj:
    found = ops.guard(
        f"get Schedule {name}",
        lambda: rest.get(constants.API_VERSION, "schedules", namespace, name),
    )
    if found is None:
        raise ops.OpsError(f"Schedule {name} not found in namespace {namespace}")
    return found


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def trigger_schedule(rest: kube.Rest, namespace: str, name: str) -> ops.Obj:
    """Start a Run of the Schedule's template now, whatever its overlapPolicy (as
    ``kubectl create job --from=cronjob/NAME``), named ``<schedule>-t<time>``: a second trigger
    within the same second is refused as a repeat."""
    schedule = get_schedule(rest, namespace, name)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    run = contract.schedule_run(schedule, now)
    run["metadata"]["name"] = f"{name}-t{_base36(int(now.timestamp()))}"
    run["metadata"]["annotations"][contract.ANNOTATION_TRIGGER] = "manual"
    try:
        created = rest.create(run)
    except kube.ApiError as err:
        raise ops.OpsError(f"the API server rejected the Run: {ops.message(err)}") from err
    if created is None:
        raise ops.OpsError(f"Run {run['metadata']['name']} exists already: triggered this second")
    return created


def backfill_schedule(
    rest: kube.Rest,
    namespace: str,
    name: str,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    timeout: float = 3600,
) -> Iterator[tuple[str, bool]]:
    """Create the Runs of the Schedule's fire times from ``start`` to ``end`` (both included),
    oldest first, yielding each name and whether this call created it. They are the names the
    fires have, so a repeated backfill (or a fire the operator made) creates nothing twice.
    Under any overlapPolicy but Allow each Run is started only once the one before finished."""
    schedule = get_schedule(rest, namespace, name)
    spec = schedule.get("spec") or {}
    try:
        when = cadence.parse(str(spec.get("schedule") or ""), spec.get("timeZone"))
    except cadence.CadenceError as err:
        raise ops.OpsError(f"Schedule {name}: {err}") from err
    if end < start:
        raise ops.OpsError("--to is before --from")
    times = []
    for moment in when.between(start - datetime.timedelta(seconds=1), end):
        times.append(moment)
        if len(times) > BACKFILL_MAX:
            raise ops.OpsError(f"more than {BACKFILL_MAX} fire times in that range: backfill less")
    sequential = (spec.get("overlapPolicy") or "Allow") != "Allow"
    for moment in times:
        run = contract.schedule_run(schedule, moment)
        run["metadata"]["annotations"][contract.ANNOTATION_TRIGGER] = "backfill"
        run_name = run["metadata"]["name"]
        try:
            created = rest.create(run)
        except kube.ApiError as err:
            raise ops.OpsError(
                f"the API server rejected Run {run_name}: {ops.message(err)}"
            ) from err
        yield run_name, created is not None
        if sequential:
            for _ in ops.follow(rest, namespace, run_name, timeout=timeout):
                pass
