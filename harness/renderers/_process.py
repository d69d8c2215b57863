"""Renderer processes spoken to in JSON lines (the Go renderer for ``ollama:``, the minijinja worker for ``tgi:``),
each exchange under a CPU-time limit and each process under an address-space cap (:mod:`harness.limits`).

The limit counts the child's CPU time (``/proc/PID/stat``), as the in-process guard counts its own: a renderer
waiting for a core on a loaded machine is not stopped, one that loops burns CPU and is. A child that neither
burns CPU nor answers is killed after ``WALL_FACTOR`` times the limit (at least ``MIN_WALL`` s) of wall time.
Where ``/proc`` is missing the limit is wall time."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from typing import IO, Any, NamedTuple, Sequence

from harness.limits import Limits, cap_child

#: A child that neither burns CPU nor answers is killed after this many times its limit of wall time ...
WALL_FACTOR = 10.0
#: ... and never before this many seconds.
MIN_WALL = 30.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``); None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of proc(5)
    except (OSError, IndexError, ValueError):
        return None


class _Armed(NamedTuple):
    check_at: float  # monotonic time of the next look at the process
    proc: subprocess.Popen
    timeout: float
    cpu_start: float | None  # the child's CPU seconds when armed (None: /proc unreadable, wall time counts)
    wall_end: float  # monotonic time past which it is killed whatever its CPU time


def _armed(proc: subprocess.Popen, timeout: float) -> _Armed:
    now = time.monotonic()
    return _Armed(now + timeout, proc, timeout, cpu_seconds(proc.pid), now + max(MIN_WALL, WALL_FACTOR * timeout))


class Watchdog:
    """One thread that kills a process whose exchange used up its CPU-time limit (cheaper than a timer thread per
    request). At each deadline it reads the child's CPU time: under the limit (the child was waiting for a core),
    the next look is when the rest of the limit could be used up. Reset in a forked child, which inherits neither
    the thread nor the parent's processes."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, _Armed] = {}
        self._fired: set[int] = set()
        self._next = 0
        self._thread: threading.Thread | None = None

    def arm(self, proc: subprocess.Popen, timeout: float) -> int:
        with self._cond:
            self._next += 1
            self._armed[self._next] = _armed(proc, timeout)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="render-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._next

    def extend(self, token: int, timeout: float) -> None:
        """Start an armed (not yet fired) limit afresh: ``timeout`` more seconds of CPU time from now."""
        with self._cond:
            if token in self._armed:
                self._armed[token] = _armed(self._armed[token].proc, timeout)

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.pop(token, None)
            self._fired.discard(token)

    def fired(self, token: int) -> bool:
        with self._cond:
            return token in self._fired

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, armed in list(self._armed.items()):
                    if armed.check_at > now:
                        continue
                    left = self._left(armed, now)
                    if left > 0:
                        self._armed[token] = armed._replace(check_at=now + left)
                        continue
                    del self._armed[token]
                    if armed.proc.poll() is not None:  # it ended on its own: the reader reports how
                        continue
                    self._fired.add(token)
                    try:
                        armed.proc.kill()
                    except OSError:
                        pass
                wait = min((a.check_at for a in self._armed.values()), default=now + 60) - now
                self._cond.wait(timeout=max(wait, 0.01))

    @staticmethod
    def _left(armed: _Armed, now: float) -> float:
        """Seconds of CPU time the child has left (at least 10 ms when any, the clock's resolution); 0: kill it."""
        if now >= armed.wall_end:
            return 0.0
        cpu = cpu_seconds(armed.proc.pid) if armed.cpu_start is not None else None
        if cpu is None:  # no /proc (or the process is gone): the deadline was wall time
            return 0.0
        left = armed.timeout - (cpu - armed.cpu_start)
        return max(left, 0.01) if left > 0.005 else 0.0


WATCHDOG = Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WATCHDOG._reset)


class ProcessDied(Exception):
    """The process ended during an exchange: ``killed`` by the watchdog (deadline), else with ``stderr``."""

    def __init__(self, killed: bool, stderr: str, returncode: int | None) -> None:
        super().__init__(stderr)
        self.killed, self.stderr, self.returncode = killed, stderr, returncode

    @property
    def out_of_memory(self) -> bool:
        """Go's ``fatal error: runtime: out of memory``, Rust's ``memory allocation of N bytes failed``."""
        text = self.stderr
        keys = ("out of memory", "cannot allocate memory", "failed to reserve", "memory allocation of", "MemoryError")
        return any(k in text for k in keys)


class LineProcess:
    """``argv`` running as a child; :meth:`exchange` sends JSON lines and reads one reply line per request.
    Call :meth:`cap` once the process has answered its first line (its runtime is set up by then)."""

    def __init__(self, argv: Sequence[str], limits: Limits) -> None:
        self.limits = limits
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     bufsize=1 << 16)

    def cap(self) -> None:
        """Cap the address space at its current size + ``limits.max_memory``."""
        cap_child(self.proc.pid, self.limits.max_memory)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def exchange(self, lines: Sequence[str]) -> list[dict[str, Any]]:
        """One reply per line, each within ``limits.timeout`` seconds of CPU time after the one before; ProcessDied
        otherwise."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        deadline = WATCHDOG.arm(proc, self.limits.timeout)
        try:
            payload = ("\n".join(lines) + "\n").encode("utf-8")
            if len(lines) == 1:
                proc.stdin.write(payload)
                proc.stdin.flush()
            else:  # a big batch: write from a thread so neither pipe can fill up and block both sides
                threading.Thread(target=self._write, args=(payload,), daemon=True).start()
            out = []
            for _ in lines:
                raw = proc.stdout.readline()
                if not raw:
                    raise EOFError
                out.append(json.loads(raw))
                if len(lines) > 1:
                    WATCHDOG.extend(deadline, self.limits.timeout)
            return out
        except (EOFError, BrokenPipeError, OSError, ValueError):
            killed = WATCHDOG.fired(deadline)
            self.close()
            raise ProcessDied(killed, self.stderr_tail(), proc.returncode) from None
        finally:
            WATCHDOG.disarm(deadline)

    def _write(self, payload: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(payload)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read(8192).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - best effort
            pass
