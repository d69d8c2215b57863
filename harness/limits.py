"""What one render may cost — CPU time, rendered size, memory — and the guards that enforce it.

Every template render (and compile) runs under :class:`Guard`: ``SIGVTALRM`` after ``timeout`` seconds of the
process's CPU time (``ITIMER_VIRTUAL``: a loaded machine or a CI runner sharing its cores never stops a render
that is merely waiting for a core; a looping template burns CPU and is stopped all the same) and, on
Linux, ``RLIMIT_AS`` lowered to the process's current address space + ``max_memory`` bytes for the duration
of the call, then restored (two syscalls and one ``/proc/self/statm`` read: a few µs, no worker process on
the hot path). A render over the cap gets ``MemoryError`` instead of taking the machine. Rendered text longer
than ``max_output`` characters is refused before it is tokenised (a 1 MiB prompt is already longer than any
zoo model's context window, and tokenising one takes seconds). Out-of-process engines (the Go renderer for
``ollama:``, the minijinja worker for ``tgi:``) get the same caps through :func:`cap_child`.

>>> Limits().max_output
1048576
"""

from __future__ import annotations

import os
import resource
import signal
import _signal  # noqa: I001 - signal's raw functions (signal.getsignal wraps each call in enum conversions)
import sys
import threading
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_OUTPUT = 1 << 20  # characters of one rendered prompt
DEFAULT_MAX_MEMORY = 128 << 20  # bytes of new address space one render (or template compile) may take
MAX_TIMEOUT = 3600.0
#: Template sources longer than this are refused before compiling (real chat templates are < 50 KB).
MAX_TEMPLATE_CHARS = 1 << 20
#: ``--examples`` above this is refused (1,000,000 conversations is already hours of work).
MAX_EXAMPLES = 1_000_000
#: ``--deploy`` given more often than this is refused (each one may start a renderer process).
MAX_DEPLOYS = 64
#: One value a template builds with ``*``/``**``/``%`` (string or list length, or int bits) may not exceed this.
MAX_VALUE_ITEMS = DEFAULT_MAX_OUTPUT
MAX_INT_BITS = 1 << 16


@dataclass(frozen=True)
class Limits:
    """Caps for one template: seconds per render, characters per rendered prompt, bytes of new memory."""

    timeout: float = DEFAULT_TIMEOUT
    max_output: int = DEFAULT_MAX_OUTPUT
    max_memory: int = DEFAULT_MAX_MEMORY


class Timeout(BaseException):
    """Raised inside a guarded call that ran past its limit (BaseException so templates cannot swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    """Installed once (not per render): a Timeout in a guarded block, else what the handler before it did."""
    if _guarded:
        raise Timeout()
    if callable(_outer):
        _outer(signum, frame)
    elif _outer == signal.SIG_DFL:  # nobody else handles SIGVTALRM: its default action
        signal.signal(_SIGNAL, signal.SIG_DFL)
        os.kill(os.getpid(), _SIGNAL)


#: True while a :class:`Guard` block runs with its alarm armed.
_guarded = False
#: The signal and timer of the guard: CPU time (user) of this process, not wall time.
_SIGNAL, _TIMER = signal.SIGVTALRM, signal.ITIMER_VIRTUAL
#: The SIGVTALRM handler :func:`_alarm` replaced (alarms outside a guarded block go to it).
_outer: Any = signal.SIG_DFL
#: The hook :func:`_unraisable` replaced (every other unraisable exception goes there).
_next_hook: Any = sys.unraisablehook


def _unraisable(args: Any) -> None:
    """The alarm can land while a finalizer (``__del__``) runs, where Python swallows the exception and prints
    it as "Exception ignored": keep it quiet and ring again in a millisecond, so the guarded block still stops."""
    if isinstance(args.exc_value, Timeout):
        if _guarded:
            signal.setitimer(_TIMER, 0.001)
        return
    _next_hook(args)


class _AddressSpace:
    """The process's current virtual size, read from ``/proc/self/statm`` (reopened after a fork)."""

    def __init__(self) -> None:
        self._fd = -1
        self._pid = 0
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def current(self) -> int | None:
        pid = os.getpid()
        if pid != self._pid:
            if self._fd >= 0:
                os.close(self._fd)
            try:
                self._fd = os.open("/proc/self/statm", os.O_RDONLY)
            except OSError:
                self._fd = -1
            self._pid = pid
        if self._fd < 0:
            return None
        return int(os.pread(self._fd, 64, 0).split(None, 1)[0]) * self._page


_AS = _AddressSpace()
_HAS_AS = sys.platform.startswith("linux") and hasattr(resource, "RLIMIT_AS")


class Guard:
    """``with Guard(limits):`` — the block gets ``limits.timeout`` seconds of CPU time and ``limits.max_memory``
    bytes of new address space (main thread only: elsewhere, and for ``timeout <= 0``, it is a no-op).

    Raises :class:`Timeout` out of the block when time runs out; allocations past the memory cap raise
    ``MemoryError`` inside it. Re-entrant use is not supported (renders do not nest)."""

    __slots__ = ("limits", "_armed", "_rlimit")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._armed = False
        self._rlimit: tuple[int, int] | None = None

    def __enter__(self) -> "Guard":
        limits = self.limits
        self._armed = limits.timeout > 0 and threading.current_thread() is threading.main_thread()
        if not self._armed:
            return self
        global _outer, _guarded, _next_hook
        current = _signal.getsignal(_SIGNAL)  # the raw call: no enum conversion, a fraction of the cost
        if current is not _alarm:
            _outer = current
            _signal.signal(_SIGNAL, _alarm)
        self._rlimit = None
        if _HAS_AS and limits.max_memory > 0:
            size = _AS.current()
            if size is not None:
                soft, hard = resource.getrlimit(resource.RLIMIT_AS)
                cap = size + limits.max_memory
                if hard != resource.RLIM_INFINITY:
                    cap = min(cap, hard)
                if soft == resource.RLIM_INFINITY or cap < soft:
                    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
                    self._rlimit = (soft, hard)
        if sys.unraisablehook is not _unraisable:
            _next_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
        _guarded = True
        signal.setitimer(_TIMER, limits.timeout)
        return self

    def __exit__(self, *exc: Any) -> None:
        global _guarded
        if not self._armed:
            return
        signal.setitimer(_TIMER, 0)  # before unguarding: a late alarm still raises Timeout here
        _guarded = False
        if self._rlimit is not None:
            resource.setrlimit(resource.RLIMIT_AS, self._rlimit)
            self._rlimit = None


def cap_child(pid: int, max_memory: int) -> None:
    """Limit another process (a renderer we started) to its current address space + ``max_memory`` bytes."""
    if not _HAS_AS or max_memory <= 0 or not hasattr(resource, "prlimit"):
        return
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            size = int(f.read().split(None, 1)[0]) * _AS._page
        resource.prlimit(pid, resource.RLIMIT_AS, (size + max_memory, size + max_memory))
    except (OSError, ValueError):
        pass  # the process is gone (it will be reported as such) or the platform cannot do it


def mib(n: int) -> str:
    """``1048576`` → ``'1 MiB'``; other sizes in KiB or characters."""
    if n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n:,}"

