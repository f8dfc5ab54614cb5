"""Run a command and measure it: wall time, peak resident memory of its whole process tree, CPU.

The peak is sampled, not computed: every ~100 ms the sampler asks psutil for the child and every
descendant (the Spark JVM that pyspark starts is a grandchild of the `lakehouse` process), sums
their RSS and keeps the largest sum. Summing RSS counts pages shared between processes (shared
libraries) once per process, so the figure is an upper bound of what the tree really holds; a
spike shorter than the sampling interval can be missed.

One sharing is too large to leave in: the JVM starts short commands (Hadoop's `chmod` on every
file it writes, `jspawnhelper`) through posix_spawn, a vfork whose child runs in the JVM's own
address space until it execs. A sample that lands in that window saw a second "process" (named
after the Java thread that spawned it, e.g. `Thread-45`) with the JVM's whole RSS, and the 5.5 M
build's peak doubled from about 3.7 GB to 6.6-8.8 GB, depending on luck (measured 2026-11-30).
Such a child is counted once, with its parent (`tree_rss`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.1
CPUS = psutil.cpu_count() or 1


@dataclass(frozen=True)
class Sampled:
    """What one sample read of one process."""

    pid: int
    ppid: int
    exe: str
    rss: int
    vms: int


def shares_parent_memory(process: Sampled, parent: Sampled | None) -> bool:
    """A vfork child between fork and exec: its parent's executable and address space (the same
    virtual size; the resident sizes, read microseconds apart, within 1%)."""
    return (
        parent is not None
        and process.exe == parent.exe
        and process.vms == parent.vms
        and abs(process.rss - parent.rss) <= parent.rss / 100
    )


def tree_rss(processes: Sequence[Sampled]) -> int:
    """The resident memory of a process tree: each process's RSS, a vfork child's once."""
    by_pid = {process.pid: process for process in processes}
    return sum(
        process.rss
        for process in processes
        if not shares_parent_memory(process, by_pid.get(process.ppid))
    )


@dataclass(frozen=True)
class Measurement:
    """What one command cost."""

    returncode: int
    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float
    """User + system CPU of the tree: the larger of what wait4 reports (the child and every
    descendant it reaped) and the sum of each process's last sampled CPU time (which counts the
    Spark JVM, which pyspark does not reap); processes shorter than a sample are missed."""
    max_processes: int
    """The most processes seen in the tree at one sample."""
    loadavg_start: tuple[float, float, float]
    loadavg_end: tuple[float, float, float]
    started_at: float
    """Epoch seconds when the command was started."""
    machine_cpu_seconds: float
    """CPU time the whole machine spent busy (all processes, everyone's) while it ran."""

    @property
    def others_cpu_share(self) -> float:
        """Share of the machine's CPUs busy with other processes than this command's."""
        others = max(0.0, self.machine_cpu_seconds - self.cpu_seconds)
        return others / (self.seconds * CPUS) if self.seconds else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the machine has spent busy since boot, all CPUs."""
    times = psutil.cpu_times()._asdict()
    # as /proc/stat counts: guest time is already inside user time; idle and iowait are not busy
    not_busy = ("idle", "iowait", "guest", "guest_nice")
    return float(sum(v for k, v in times.items() if k not in not_busy))


def busy_share(interval_s: float = 1.0) -> float:
    """Share of all CPUs busy over the next `interval_s` seconds."""
    return float(psutil.cpu_percent(interval=interval_s)) / 100


def wait_for_quiet(max_wait_s: float, threshold: float = 0.25, window_s: float = 3.0) -> float:
    """Wait (at most `max_wait_s`) until the machine's CPUs are busy less than `threshold` over
    `window_s` seconds: other people's test runs share these cores. Returns the seconds waited."""
    started = time.perf_counter()
    if max_wait_s <= 0:
        return 0.0
    while busy_share(window_s) > threshold:
        if time.perf_counter() - started >= max_wait_s:
            log.warning("machine still busy after %.0f s; measuring anyway", max_wait_s)
            break
    return time.perf_counter() - started


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages of the machine."""
    one, five, fifteen = psutil.getloadavg()
    return float(one), float(five), float(fifteen)


class TreeSampler(threading.Thread):
    """Samples the resident memory and CPU time of a process tree until stopped."""

    def __init__(self, root: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(name=f"rss-sampler-{root}", daemon=True)
        self.root = psutil.Process(root)
        self.interval = interval
        self.peak_bytes = 0
        self.max_processes = 0
        self.cpu_by_pid: dict[int, float] = {}
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:  # the command has ended
            return
        sampled = []
        for process in tree:
            try:
                with process.oneshot():
                    memory = process.memory_info()
                    sampled.append(
                        Sampled(process.pid, process.ppid(), process.exe(), memory.rss, memory.vms)
                    )
                    cpu = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue  # ended while we looked
            seconds = cpu.user + cpu.system
            self.cpu_by_pid[process.pid] = max(self.cpu_by_pid.get(process.pid, 0.0), seconds)
        self.peak_bytes = max(self.peak_bytes, tree_rss(sampled))
        self.max_processes = max(self.max_processes, len(tree))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_pid.values())

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_file: Path,
    timeout_s: float | None = None,
    stdin_file: Path | None = None,
) -> Measurement:
    """Run `argv` to completion (input from `stdin_file`, output to `log_file`) and measure it.

    The command gets its own session, so on a timeout its whole process group (and only that)
    is killed.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    load_start = loadavg()
    busy_start = machine_busy_seconds()
    with log_file.open("wb") as out, (stdin_file or Path(os.devnull)).open("rb") as stdin:
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = TreeSampler(process.pid)
        sampler.start()
        timer = threading.Timer(timeout_s, _kill_group, (process.pid,)) if timeout_s else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            seconds = time.perf_counter() - started
            if timer:
                timer.cancel()
            sampler.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        returncode=process.returncode,
        seconds=seconds,
        peak_rss_bytes=sampler.peak_bytes,
        cpu_seconds=max(usage.ru_utime + usage.ru_stime, sampler.cpu_seconds),
        max_processes=sampler.max_processes,
        loadavg_start=load_start,
        loadavg_end=loadavg(),
        started_at=started_at,
        machine_cpu_seconds=machine_busy_seconds() - busy_start,
    )


def _kill_group(pid: int) -> None:
    log.error("process %d timed out; killing its process group", pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
