"""Shared pieces of the benchmarks: control plane, watches, pacing, API counters, CPU and RSS.

Everything here observes from the outside, the way a user's monitoring would: timestamps are
taken by the benchmark process when a create call returns or a watch event arrives, the API
server's own ``apiserver_request_total`` counts writes, and ``/proc`` gives CPU time and RSS of
the processes the benchmark started. Nothing here asserts a timing.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kubernetes.client import exceptions

from bosun import kube, ops
from bosun.dev import daemon, provision, testing

Obj = dict[str, Any]

MUTATING = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
READING = ("GET", "LIST")
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
_TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress for the person waiting; the figures go to stdout at the end."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics and tables ---------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def rate_of(times: Sequence[float]) -> float:
    """Events per second from the first to the last of ``times`` (0 for fewer than two)."""
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else 0.0


def steady_rate(times: Sequence[float], trim: float = 0.1) -> float:
    """Events per second between the ``trim`` and ``1 - trim`` quantiles of their times.

    Leaves out the ramp-up and the drain of a batch, which say more about the batch size
    than about the rate the system sustains.
    """
    ordered = sorted(times)
    if len(ordered) < 3:
        return 0.0
    low = int(trim * (len(ordered) - 1))
    high = int((1 - trim) * (len(ordered) - 1))
    span = ordered[high] - ordered[low]
    return (high - low) / span if span > 0 else 0.0


# --- the control plane ------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    """A private local control plane with Bosun's CRDs, for one benchmark process."""

    handle: testing.ControlPlaneHandle
    rest: kube.Rest
    state: daemon.State


@contextlib.contextmanager
def local_control_plane() -> Iterator[Cluster]:
    """Start a control plane in a temporary folder, apply the CRDs, and stop it afterwards.

    The folder (etcd data, logs of every component, the operator and the pods) is removed
    when the benchmark succeeds and kept, with a note of where, when it fails."""

    folder = pathlib.Path(tempfile.mkdtemp(prefix="bosun-bench-"))
    state = daemon.up(folder, attached=True, log=lambda _m: None)
    succeeded = False
    try:
        handle = testing.ControlPlaneHandle(
            state.kubeconfig, folder, provision.ensure(["kubectl"])["kubectl"]
        )
        rest = kube.connect(state.kubeconfig)
        ops.install_crds(rest, manager="bosun-bench")
        yield Cluster(handle, rest, state)
        succeeded = True
    finally:
        daemon.down(folder, log=lambda _m: None)
        if succeeded:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            log(f"Kept {folder}: logs/ has the control plane's and the operators' logs")


def create_namespace(rest: kube.Rest, name: str) -> str:
    """Create a namespace and wait for its default ServiceAccount (pods need it)."""
    rest.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    testing.until(
        lambda: rest.get("v1", "serviceaccounts", name, "default"),
        what=f"the default ServiceAccount of {name}",
    )
    return name


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _leading(metrics_url: str) -> bool:
    """Whether the operator's ``bosun_leader`` gauge says it leads."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return False
    return re.search(r"^bosun_leader 1(\.0)?$", text, re.MULTILINE) is not None


def wait_operator_ready(operator: testing.OperatorProcess, timeout: float = 300) -> float:
    """Wait until the operator leads and has listed the world; return the seconds waited.

    Its /readyz alone is not enough: a standby replica waiting for the leader Lease (say, the
    one a stopped predecessor has not released) is ready too, before it has listed anything.
    """
    started = time.monotonic()
    ready = operator.health_url.replace("healthz", "readyz")

    def check() -> bool:
        if operator.proc is not None and operator.proc.poll() is not None:
            raise RuntimeError(f"the operator exited; see {operator.log_path}")
        return _leading(operator.metrics_url) and http_ok(ready)

    testing.until(check, timeout=timeout, interval=0.05, what="the operator to be ready")
    return time.monotonic() - started


# --- API server counters ------------------------------------------------------------------------


def _api_requests(rest: kube.Rest, verbs: Sequence[str]) -> collections.Counter[str]:
    """Requests with one of ``verbs`` the API server has served so far, by resource."""
    counts: collections.Counter[str] = collections.Counter()
    for line in rest.text("/metrics").splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        if labels.get("verb") in verbs:
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[resource] += int(float(match.group("value")))
    return counts


def api_writes(rest: kube.Rest) -> collections.Counter[str]:
    """Mutating requests the API server has served so far, by resource."""
    return _api_requests(rest, MUTATING)


def api_reads(rest: kube.Rest) -> collections.Counter[str]:
    """GETs and LISTs (not watches) the API server has served so far, by resource."""
    return _api_requests(rest, READING)


# --- watching ------------------------------------------------------------------------------------

OnEvent = Callable[[str, Obj, float], None]


class Watch:
    """Follow one collection in a thread and hand every event to ``on_event(type, obj, at)``.

    ``at`` is the monotonic time the event arrived. The watch resumes from the last
    resourceVersion it saw and lists again (as ADDED events) when the server says it is gone.
    """

    def __init__(
        self,
        rest: kube.Rest,
        api_version: str,
        plural: str,
        namespace: str,
        on_event: OnEvent,
        *,
        label_selector: str | None = None,
    ) -> None:
        self.rest = rest
        self.path = kube.collection_path(api_version, plural, namespace)
        self.on_event = on_event
        self.label_selector = label_selector
        self.stopping = threading.Event()
        self.listed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{plural}", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        self.listed.wait(60)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        # The watch thread notices at its next event or bookmark; it is a daemon either way.
        self._thread.join(15)

    def _query(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.label_selector)] if self.label_selector else []

    def _list(self) -> str:
        body = self.rest.request("GET", self.path, query=self._query())
        at = time.monotonic()
        for item in body.get("items", []):
            self.on_event("ADDED", item, at)
        self.listed.set()
        return str(body["metadata"]["resourceVersion"])

    def _loop(self) -> None:
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._watch(version)
            except Exception:
                if self.stopping.is_set():
                    return
                time.sleep(0.2)

    def _watch(self, version: str) -> str:
        query = [
            *self._query(),
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "60"),
        ]
        with self.rest.stream(self.path, query) as events:
            for event in events:
                if self.stopping.is_set():
                    break
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    return ""  # too old a version: list again
                version = obj["metadata"].get("resourceVersion") or version
                if kind != "BOOKMARK":
                    self.on_event(kind, obj, time.monotonic())
        return version


def job_finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` once a Job has ended, else None."""
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


class Marks:
    """First times at which objects reached named milestones (``created``, ``job``, ``done``…)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: dict[str, dict[str, float]] = collections.defaultdict(dict)
        self.outcomes: dict[str, str] = {}
        self.changed = threading.Condition(self._lock)

    def mark(self, milestone: str, name: str, at: float, outcome: str | None = None) -> None:
        with self._lock:
            if name not in self.times[milestone]:
                self.times[milestone][name] = at
                if outcome is not None:
                    self.outcomes[name] = outcome
                self.changed.notify_all()

    def count(self, milestone: str) -> int:
        with self._lock:
            return len(self.times[milestone])

    def wait_for(self, milestone: str, names: Sequence[str], timeout: float) -> bool:
        """Block until every name reached ``milestone``; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        wanted = set(names)
        with self._lock:
            while not wanted <= self.times[milestone].keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 1.0))
        return True

    def between(self, start: str, end: str, names: Sequence[str]) -> list[float]:
        """Seconds from ``start`` to ``end`` for the names that reached both."""
        with self._lock:
            first, second = self.times[start], self.times[end]
            return [second[n] - first[n] for n in names if n in first and n in second]


# --- creating at a pace -------------------------------------------------------------------------


def create_paced(
    rest: kube.Rest,
    objects: Sequence[Obj],
    marks: Marks,
    *,
    rate: float | None = None,
    threads: int = 1,
) -> float:
    """Create ``objects`` (open loop: at ``rate`` per second, or as fast as ``threads`` can).

    Marks each object ``created`` when its create call returns and returns the seconds the
    whole submission took. A slow API server makes the schedule slip, never the rate rise.
    """
    started = time.monotonic()

    def work(index: int) -> None:
        if rate:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        _create_retrying(rest, objects[index])
        marks.mark("created", objects[index]["metadata"]["name"], time.monotonic())

    run_parallel(work, len(objects), threads)
    return time.monotonic() - started


def _create_retrying(rest: kube.Rest, obj: Obj, attempts: int = 5) -> None:
    """Create, retrying what a loaded API server may answer (429, 5xx, timeouts)."""
    for attempt in range(attempts):
        try:
            rest.create(obj)
            return
        except exceptions.ApiException as err:
            if err.status not in (429, 500, 503, 504) or attempt == attempts - 1:
                raise
        except OSError:
            if attempt == attempts - 1:
                raise
        time.sleep(0.2 * 2**attempt)


def run_parallel(work: Callable[[int], None], count: int, threads: int) -> None:
    """Call ``work(i)`` for i in range(count) from ``threads`` threads; re-raise a failure."""
    counter = iter(range(count))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        while not failures:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            try:
                work(index)
            except BaseException as err:
                failures.append(err)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]


# --- CPU and memory from /proc -----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time (user + system) of a live process, or of its reaped children."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    first = 13 if children else 11  # cutime, cstime / utime, stime
    return (int(fields[first]) + int(fields[first + 1])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds all processors spent not idle since boot (/proc/stat)."""
    line = pathlib.Path("/proc/stat").read_text().splitlines()[0]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
    del idle, iowait
    return (user + nice + system + irq + softirq + steal) / _TICK


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process in KiB (``VmHWM`` gives the peak)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} for pid {pid}")


class CpuMeter:
    """CPU seconds spent by each process the benchmark started, and by the whole machine.

    ``pods`` are the processes the node emulator ran and reaped (its children's time), so a
    phase's runner pods are counted once they exit; ``other`` is whatever else ran on the
    machine meanwhile (another test suite, say), which the figures should be read against.
    """

    def __init__(self, components: Mapping[str, int], emulator: str = "node-emulator") -> None:
        self.components = dict(components)
        self.emulator = emulator

    def sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, pid in self.components.items()}
        if self.emulator in self.components:
            sample["pods"] = cpu_seconds(self.components[self.emulator], children=True)
        times = os.times()
        sample["benchmark client"] = times.user + times.system
        sample["machine"] = machine_busy_seconds()
        sample["wall"] = time.monotonic()
        return sample

    @staticmethod
    def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        """CPU seconds per process between two samples, ``other``, and ``wall`` seconds."""
        spent = {name: after[name] - before.get(name, 0.0) for name in after}
        ours = sum(v for k, v in spent.items() if k not in ("machine", "wall"))
        spent["other"] = max(0.0, spent["machine"] - ours)
        return spent


def cpu_shares(spent: Mapping[str, float]) -> dict[str, float]:
    """Shares of the machine's CPU capacity over ``spent["wall"]``: all that was busy, what
    the benchmark's processes used, and what other processes used."""
    capacity = spent["wall"] * (os.cpu_count() or 1) or 1.0
    return {
        "busy": round(spent["machine"] / capacity, 3),
        "ours": round((spent["machine"] - spent["other"]) / capacity, 3),
        "other": round(spent["other"] / capacity, 3),
    }


# --- facts about the run ------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures came from: processors, memory, CPU model, kernel, Python."""
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = pathlib.Path("/proc/meminfo").read_text()
    total = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{int(total.group(1)) / 1024 / 1024:.1f} GiB" if total else "?",
        "cpu": model.group(1).strip() if model else "?",
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "loadavg": pathlib.Path("/proc/loadavg").read_text().split(" ")[0],
    }


def git_commit(folder: pathlib.Path) -> str:
    """HEAD of the checkout, with ``+dirty`` when the work tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
