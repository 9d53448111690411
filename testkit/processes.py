"""Memory and CPU of a process tree (a server and its workers): psutil when present, /proc otherwise."""

from __future__ import annotations

import os
from pathlib import Path

try:
    import psutil
except ImportError:  # the /proc fallbacks below cover Linux
    psutil = None

TICKS = os.sysconf("SC_CLK_TCK")
GONE = (OSError, IndexError, ValueError) + ((psutil.Error,) if psutil is not None else ())  # a process that ended


def _descendants(pid: int) -> list[int]:
    """Descendants of `pid` by scanning /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants; empty when `pid` is gone."""
    if psutil is not None:
        try:
            return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    return [pid] + _descendants(pid) if Path(f"/proc/{pid}").exists() else []


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (0 when it is gone)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def tree_rss(pid: int) -> dict:
    """{'total_mb': ..., 'processes': {pid: mb}} over `pid` and all its descendants."""
    per = {p: round(rss_mb(p), 2) for p in tree_pids(pid)}
    return {"total_mb": round(sum(per.values()), 2), "processes": {str(p): v for p, v in per.items()}}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants so far."""
    total = 0.0
    for p in tree_pids(pid):
        try:
            if psutil is not None:
                t = psutil.Process(p).cpu_times()
                total += t.user + t.system
            else:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICKS
        except GONE:  # between the listing and the read
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU-seconds all CPUs spent not idle since boot (/proc/stat), to see what else ran meanwhile."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS  # guest time is already inside user
