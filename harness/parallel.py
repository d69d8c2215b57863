"""``--jobs N``: sweep contiguous slices of one conversation sequence in forked workers, merge in order.

The parent loads the tokenizer and renderers, then forks (Linux ``fork`` context): each worker inherits them,
sweeps its slice (:func:`harness.runner.sweep`, no shrinking) and sends its counts back pickled. The parent
merges the slices in conversation order (:func:`harness.runner.merge_sweeps`) and shrinks once per class, so
reports are byte-identical to ``--jobs 1``. Pairs whose renderer talks to a process of its own (``ollama:``,
``tgi:``: one pipe, a watchdog thread that a fork does not carry) run in the parent."""

from __future__ import annotations

import copyreg
import multiprocessing
import os
import pickle
from itertools import islice
from multiprocessing.connection import wait
from types import MappingProxyType
from typing import Any, Callable, Iterator, Sequence

from harness.checks import Pair
from harness.errors import HarnessError
from harness.runner import Sweep, merge_sweeps, sweep

#: Below this many conversations per worker a fork costs more than it saves: run in the parent.
MIN_PER_JOB = 200
#: Spec kinds whose renderer owns a subprocess pipe and a watchdog thread: never forked.
IN_PROCESS_KINDS = frozenset({"ollama", "llamafactory-ollama", "tgi"})

# Conversation.meta is a read-only mapping: a worker's failures carry it back to the parent
def _proxy(items: dict) -> MappingProxyType:
    return MappingProxyType(items)


copyreg.pickle(MappingProxyType, lambda m: (_proxy, (dict(m),)))


def default_jobs() -> int:
    """All cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """``[lo, hi)`` of slice ``index`` (0-based) of ``count`` contiguous slices of ``total`` conversations."""
    return total * index // count, total * (index + 1) // count


def usable_jobs(pair: Pair, jobs: int, total: int) -> int:
    """How many workers sweep ``total`` conversations of ``pair``: 1 for small runs and process-backed renderers."""
    from harness.specs import parse_spec

    if any(parse_spec(r.spec).kind in IN_PROCESS_KINDS for r in (pair.train, pair.deploy)):
        return 1
    return max(1, min(jobs, total // MIN_PER_JOB))


def parallel_sweep(pair: Pair, conversations: Callable[[], Iterator[Any]], total: int, jobs: int, *,
                   checks: Sequence[str] | None = None, advance: Callable[[int], None] | None = None) -> Sweep:
    """Sweep the ``total`` conversations ``conversations()`` yields in ``jobs`` forked workers (each regenerates
    the sequence and sweeps its slice). A worker's error is raised here: the earliest slice's, as a serial run
    would meet it first."""
    if jobs <= 1:
        return sweep(pair, conversations(), checks=checks, advance=advance)
    ctx = multiprocessing.get_context("fork")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the Rust pool does not survive a fork
    if checks is None or any(name.endswith("-roundtrip") for name in checks):
        for member in ("tool_parser", "reasoning_parser"):  # build them (vLLM's ~20 s import) once, before forking
            getattr(pair.deploy, member, None)

    def work(index: int, conn: Any) -> None:
        lo, hi = bounds(total, index, jobs)
        pending = 0

        def tick(k: int) -> None:
            nonlocal pending
            pending += k
            if pending >= 50:
                conn.send(("tick", pending))
                pending = 0

        try:
            part = sweep(pair, islice(conversations(), lo, hi), checks=checks, advance=tick)
            conn.send(("done", pickle.dumps(part)))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            conn.send(("error", _portable(exc)))

    readers, procs = {}, []
    for i in range(jobs):
        reader, writer = ctx.Pipe(duplex=False)
        procs.append(ctx.Process(target=work, args=(i, writer), daemon=True))
        procs[-1].start()
        writer.close()
        readers[reader] = i
    parts: dict[int, Sweep] = {}
    errors: dict[int, BaseException] = {}
    try:
        while readers:
            for reader in wait(list(readers)):
                index = readers[reader]
                try:
                    kind, payload = reader.recv()
                except EOFError:  # the worker died without a word (killed, out of memory)
                    kind, payload = "error", HarnessError(
                        f"--jobs worker {index + 1}/{jobs} exited with code {procs[index].exitcode} before it "
                        "finished; rerun with --jobs 1")
                if kind == "tick":
                    if advance:
                        advance(payload)
                    continue
                if kind == "done":
                    parts[index] = pickle.loads(payload)
                else:
                    errors[index] = payload
                del readers[reader]
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    if errors:
        raise errors[min(errors)]
    return merge_sweeps([parts[i] for i in range(jobs)])


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`HarnessError` (or RuntimeError) with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception type may fail to pickle
        kind = HarnessError if isinstance(exc, HarnessError) else RuntimeError
        return kind(str(exc) or type(exc).__name__)
