"""The process that runs minijinja for ``tgi:`` (started by harness.renderers.tgi; imports no harness code).

minijinja is Rust: an allocation it cannot make aborts the whole process, and one instruction (``'a' * 10**9``)
can run for seconds whatever the fuel. So it renders here, in a child the harness can time out, cap in
memory and lose, never in the harness process itself.

Protocol, JSON lines on stdin/stdout. First line ``{"source", "fuel", "whitespace", "now", "max_output",
"max_memory", "remove_filters", "remove_globals"}`` → ``{"ok": true, "uses_tools": bool}`` or ``{"error": {"kind": "syntax",
"line", "message"}}``. Then one ``{"context": {...}}`` per render → ``{"text": "..."}`` or ``{"error": {"kind",
"message"}}`` with kind ``raised`` (raise_exception), ``fuel``, ``output`` (past max_output characters),
``recursion``, ``memory`` or ``minijinja`` (any other template error; ``mj_kind`` is minijinja's kind).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any


class Raised(Exception):
    """``raise_exception(...)`` in a template."""


def _raise_exception(message: Any) -> None:
    raise Raised(str(message))


def cap_memory(max_memory: int) -> None:
    """Cap this process's address space at its size now + ``max_memory`` bytes, before any template code runs
    (minijinja folds constants while compiling). Linux only; elsewhere a no-op."""
    import os
    import resource

    try:
        with open("/proc/self/statm", "rb") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (size + max_memory, size + max_memory))
    except (OSError, ValueError, AttributeError):
        pass


def setup(head: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import minijinja

    if head.get("max_memory"):
        cap_memory(int(head["max_memory"]))
    now = datetime.fromisoformat(head["now"])
    env = minijinja.Environment()
    env.fuel = head["fuel"]
    env.trim_blocks = env.lstrip_blocks = bool(head["whitespace"])
    for name in head["remove_filters"]:
        env.remove_filter(name)
    for name in head["remove_globals"]:
        env.remove_global(name)
    env.add_function("raise_exception", _raise_exception)
    env.add_function("strftime_now", lambda fmt: now.strftime(fmt))
    try:
        env.add_template("chat_template", head["source"])
        uses_tools = "tools" in env.undeclared_variables_in_str(head["source"], nested=True)
    except minijinja.TemplateError as exc:
        return None, {"error": {"kind": "syntax", "line": exc.line, "message": exc.message}}
    return env, {"ok": True, "uses_tools": uses_tools}


def render(env: Any, context: dict[str, Any], max_output: int) -> dict[str, Any]:
    import minijinja

    try:
        text = env.render_template("chat_template", **context)
    except Raised as exc:
        return {"error": {"kind": "raised", "message": str(exc)}}
    except minijinja.TemplateError as exc:
        kind = "fuel" if exc.kind == "OutOfFuel" else "minijinja"
        return {"error": {"kind": kind, "mj_kind": exc.kind, "message": exc.message}}
    except RecursionError:
        return {"error": {"kind": "recursion", "message": "maximum recursion depth exceeded"}}
    except MemoryError:
        return {"error": {"kind": "memory", "message": "MemoryError"}}
    if len(text) > max_output:
        return {"error": {"kind": "output", "message": f"{len(text)} characters"}}
    return {"text": text}


def main() -> None:
    out = sys.stdout
    head = json.loads(sys.stdin.readline())
    env, answer = setup(head)
    out.write(json.dumps(answer) + "\n")
    out.flush()
    if env is None:
        return
    max_output = int(head["max_output"])
    for line in sys.stdin:
        out.write(json.dumps(render(env, json.loads(line)["context"], max_output), ensure_ascii=False) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
