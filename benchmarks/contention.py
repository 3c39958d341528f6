"""Whether other work shared the machine while a benchmark model trained.

Training seconds measured beside other trainings or test sessions are not the model's cost. A run file
records a snapshot at the start and at the end of its training: the 1-minute load average and the other
nnU-Net trainings and pytest sessions running (this process and its ancestors excepted, so a benchmark
started by a test does not count its own test session). A run with another such process at either end is
`contended`; the tables leave its training seconds out and say so.
"""
import os
from typing import List

WATCHED = ("nnUNetv2_train", "pytest")


def ancestors(pid: int) -> set:
    """pid and the processes above it."""
    chain = set()
    while pid > 1 and pid not in chain:
        chain.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return chain


def other_processes() -> List[str]:
    """'PID command line' of the other nnUNetv2_train and pytest processes running now (none where /proc is absent)."""
    mine = ancestors(os.getpid())
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if any(w in command for w in WATCHED):
            found.append(f"{entry} {command[:200]}")
    return found


def snapshot() -> dict:
    return {"load_avg_1min": round(os.getloadavg()[0], 2), "other_processes": other_processes()}


def contended(record: dict) -> bool:
    """True when a run's training shared the machine (recorded, or marked by hand on older run files)."""
    return bool(record.get("contended", False))
