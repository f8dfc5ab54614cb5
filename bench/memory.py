"""Run a command and measure it: wall time, peak resident memory of its whole process tree, CPU.

The peak is sampled, not computed: every ~100 ms the sampler walks /proc, finds the child and
every descendant (the Spark JVM that pyspark starts is a grandchild of the `lakehouse` process),
sums their VmRSS and keeps the largest sum. Summing RSS counts pages shared between processes
(shared libraries) once per process, so the figure is an upper bound of what the tree really
holds; a spike shorter than the sampling interval can be missed.
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

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.1
PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


CPUS = os.cpu_count() or 1


def machine_busy_seconds() -> float:
    """CPU seconds the machine has spent busy since boot, all CPUs (from /proc/stat)."""
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLOCK_TICKS


def busy_share(interval_s: float = 1.0) -> float:
    """Share of all CPUs busy over the next `interval_s` seconds."""
    before = machine_busy_seconds()
    time.sleep(interval_s)
    return (machine_busy_seconds() - before) / (interval_s * CPUS)


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
    one, five, fifteen = (PROC / "loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user + system CPU ticks) of every process visible in /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def descendants(root: int, table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in (table or _process_table()).items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pid: int) -> int:
    """VmRSS of one process (0 for a zombie or a process that is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the resident memory of a process tree until stopped."""

    def __init__(self, root: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(name=f"rss-sampler-{root}", daemon=True)
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self.max_processes = 0
        self.cpu_ticks: dict[int, int] = {}
        self._stop_event = threading.Event()

    def sample(self) -> None:
        table = _process_table()
        tree = descendants(self.root, table)
        for pid in tree:
            self.cpu_ticks[pid] = max(self.cpu_ticks.get(pid, 0), table.get(pid, (0, 0))[1])
        self.peak_bytes = max(self.peak_bytes, sum(rss_bytes(pid) for pid in tree))
        self.max_processes = max(self.max_processes, len(tree))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_ticks.values()) / CLOCK_TICKS

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_file: Path,
    timeout_s: float | None = None,
) -> Measurement:
    """Run `argv` to completion (output to `log_file`) and measure it.

    The command gets its own session, so on a timeout its whole process group (and only that)
    is killed.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    load_start = loadavg()
    busy_start = machine_busy_seconds()
    with log_file.open("wb") as out:
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
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
