"""The restart policy of `gamemetrics up`: a service process that dies is started again after a
backoff, as Kubernetes restarts a pod's container; one that keeps dying soon after it starts stops
the platform with the reason. What happened is written down for `gamemetrics status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gamemetrics.settings import RestartSettings

PROCESSES_FILE = "processes.json"


class CrashLoop(Exception):
    """A process died `max_crashes` times in a row, each time soon after it started."""


@dataclass
class Member:
    """One supervised process: how to start it again and what it did so far."""

    name: str
    argv: list[str]
    env: dict[str, str]
    restart: bool
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    crashes: int = 0  # deaths in a row, each before the run counted as stable
    restart_at: float | None = None  # when a dead member is due to start again
    last_exit: str | None = None
    last_exit_at: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def describe_exit(code: int) -> str:
    """`exited with code 1`, or `killed by SIGKILL` for a process a signal ended."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Starts processes, notices deaths, restarts with exponential backoff and records it all."""

    def __init__(self, policy: RestartSettings, record: Path | None = None,
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.record = record
        self.log = log
        self.clock = clock
        self.members: dict[str, Member] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], *,
              restart: bool = True) -> subprocess.Popen[bytes]:
        """Start `argv` as member `name`; with `restart`, it is started again whenever it dies."""
        process = subprocess.Popen(argv, env=env)
        self.members[name] = Member(name, argv, env, restart, process, self.clock())
        self._write()
        return process

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The current process of each member (dead ones included, for stopping and reaping)."""
        return {name: member.process for name, member in self.members.items()}

    def backoff(self, crashes: int) -> float:
        """The wait before the restart after `crashes` deaths in a row: doubled each time, bounded."""
        return min(self.policy.backoff_max_seconds, self.policy.backoff_seconds * 2.0 ** max(crashes - 1, 0))

    def tick(self) -> None:
        """One look at every member: reap the dead, restart those due; raises CrashLoop to stop."""
        now = self.clock()
        changed = False
        for member in self.members.values():
            if member.restart_at is None:
                code = member.process.poll()
                if code is None:
                    continue
                changed = True
                self._died(member, code, now)
            elif now >= member.restart_at:
                changed = True
                member.restart_at = None
                member.process = subprocess.Popen(member.argv, env=member.env)
                member.started_at = self.clock()
                member.restarts += 1
                self.log(f"{member.name} restarted (restart {member.restarts}, pid {member.process.pid})")
        if changed:
            self._write()

    def _died(self, member: Member, code: int, now: float) -> None:
        ran = now - member.started_at
        how = describe_exit(code)
        member.last_exit = how
        member.last_exit_at = datetime.now(UTC).isoformat()
        member.history = [*member.history[-9:], {"at": member.last_exit_at, "exit": how, "ran_seconds": round(ran, 3)}]
        if not member.restart:
            self.log(f"{member.name} {how}; not restarted")
            member.restart_at = float("inf")
            return
        member.crashes = member.crashes + 1 if ran < self.policy.stable_seconds else 1
        if member.crashes >= self.policy.max_crashes:
            self._write()
            raise CrashLoop(f"{member.name} {how}, its {member.crashes}th death in a row within"
                            f" {self.policy.stable_seconds:g}s of starting; not restarting it")
        delay = self.backoff(member.crashes)
        member.restart_at = now + delay
        self.log(f"{member.name} {how} after {ran:.1f}s; restarting in {delay:g}s")

    def run(self, interval: float = 0.2) -> None:
        """Supervise until a CrashLoop (raised) or a KeyboardInterrupt."""
        while True:
            self.tick()
            time.sleep(interval)

    def _write(self) -> None:
        if self.record is None:
            return
        report = {"pid": os.getpid(), "processes": [
            {"name": m.name, "pid": m.process.pid,
             "state": "running" if m.restart_at is None else "stopped" if m.restart_at == float("inf") else "waiting",
             "restarts": m.restarts, "last_exit": m.last_exit, "last_exit_at": m.last_exit_at, "exits": m.history}
            for m in self.members.values()
        ]}
        partial = self.record.with_suffix(".partial")
        partial.write_text(json.dumps(report))
        partial.replace(self.record)  # readers never see half a file


def supervised_processes(data_dir: Path) -> list[dict[str, Any]] | None:
    """The processes of the `up` running from `data_dir` with their restarts, if one is running."""
    try:
        report = json.loads((data_dir / PROCESSES_FILE).read_text())
        os.kill(int(report["pid"]), 0)  # an `up` that was killed left the file behind
        return list(report["processes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def withdraw_record(data_dir: Path) -> None:
    (data_dir / PROCESSES_FILE).unlink(missing_ok=True)
