"""Hostile templates through ``harness check``: each must end with exit 2 within 5 s and under 1.5 GiB.

Escapes, endless loops, recursion, output and memory bombs, compile-time bombs and deep nesting, for every
engine that runs template code (``jinja:``/``hf:`` in-process, ``ollama:`` in Go, ``tgi:`` in minijinja).
The tokenizer is loaded once; each case then runs ``harness check`` in a forked child, whose peak RSS is
measured from the fork (``/proc/self/clear_refs`` resets the high-water mark), renderer processes included.

    python benchmarks/hostile.py [--jobs 2] [--json] [CASE ...]

Prints one row per case: exit status, seconds in ``harness check``, peak RSS (MiB) and the error message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_SECONDS = 5.0
MAX_RSS_MIB = 1536

_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
_GROW = "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = EXPR %}{% endfor %}{{ ns.s|length }}"
_GO = 'FROM ./m.gguf\nTEMPLATE """{}"""\n'

#: What the message must say: the limit (or rule) that stopped the template.
UNSAFE, TIME, MEMORY, VALUE, OUTPUT = "unsafe", "ran past the 2 s", "memory cap", "cap of", "cap on rendered size"
EITHER = f"{TIME}|{MEMORY}"

#: name -> (spec kind, template text, regex the message must match). ``jinja`` runs on the training side,
#: the other kinds on the deploy side.
CASES: dict[str, tuple[str, str, str]] = {
    # escapes: the sandbox refuses to read internals
    "escape: __class__.__mro__": ("hf", "{{ messages.__class__.__mro__ }}", UNSAFE),
    "escape: function __globals__": ("hf", "{{ raise_exception.__globals__ }}", UNSAFE),
    "escape: cycler __init__": ("jinja", "{{ cycler.__init__.__globals__ }}", UNSAFE),
    "escape: str.format field": ("hf", "{{ '{0.__class__.__mro__}'.format(messages) }}", UNSAFE),
    "escape: lipsum globals": ("jinja", "{{ lipsum.__globals__['os'] }}", UNSAFE),
    # loops and recursion
    "loop: 10^10 iterations": ("jinja", _LOOP, TIME),
    "loop: range(10**9)": ("hf", "{% for i in range(10**9) %}x{% endfor %}", "MAX_RANGE"),
    "recursion: endless macro": ("jinja", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion"),
    # value, output and memory bombs at render time
    "bomb: 'a' * 10**7": ("jinja", "{{ 'a' * 10**7 }}", VALUE),
    "bomb: 10 MB of output": ("hf", "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", OUTPUT),
    "bomb: namespace + doubling": ("jinja", _GROW.replace("EXPR", "ns.s + ns.s"), EITHER),
    "bomb: ~ doubling": ("hf", _GROW.replace("EXPR", "ns.s ~ ns.s"), EITHER),
    "bomb: join doubling": ("hf", _GROW.replace("EXPR", "[ns.s, ns.s]|join"), EITHER),
    "bomb: list doubling": ("jinja", _GROW.replace("s='ab'", "s=[1]").replace("EXPR", "ns.s + ns.s"), EITHER),
    "bomb: replace growth": ("jinja", _GROW.replace("EXPR", "ns.s|replace('a', 'aa')"), EITHER),
    "bomb: str.ljust(9e8)": ("hf", "{{ 'a'.ljust(900000000) }}", MEMORY),
    "bomb: '{:>9e8}'.format": ("hf", "{{ '{:>900000000}'.format('a') }}", MEMORY),
    "bomb: tojson indent": ("hf", "{{ messages|tojson(indent=100000000) }}", EITHER),
    # compile-time bombs (Jinja folds constants while compiling)
    "compile: 'a' * 10**9": ("jinja", "{{ 'a' * 1000000000 }}", VALUE),
    "compile: 2 ** 2 ** 36": ("hf", "{{ 2 ** (2 ** 36) }}", VALUE),
    "compile: '%1000000000s' % x": ("hf", "{{ '%1000000000s' % 'a' }}", VALUE),
    "compile: |center(10**9)": ("jinja", "{{ 'a'|center(1000000000) }}", MEMORY),
    "compile: 100,000 chained +": ("jinja", "{{ " + "+".join(["1"] * 100_000) + " }}", "compiling ran past"),
    "nesting: 5,000 nested if": ("jinja", "{% if true %}" * 5000 + "x" + "{% endif %}" * 5000, "flatten"),
    "nesting: 300 nested for": ("hf", "{% for a in [1] %}" * 300 + "x" + "{% endfor %}" * 300, "flatten"),
    # Ollama: Go text/template
    "ollama: endless {{template}}": ("ollama", _GO.format('{{define "a"}}{{template "a" .}}{{end}}{{template "a" .}}'),
                                     "recurses without end"),
    "ollama: output bomb": ("ollama", _GO.format("{{range 100000000}}" + "a" * 64 + "{{end}}"), OUTPUT),
    "ollama: printf doubling": ("ollama", _GO.format('{{ $x := "ab" }}{{range 40}}{{ $x = printf "%s%s" $x $x }}'
                                                     '{{end}}{{ len $x }}'), "ran past the 2 s|memory cap"),
    "ollama: endless loop": ("ollama", _GO.format("{{range 2000000000}}{{range 2000000000}}{{end}}{{end}}"),
                             "ran past the 2 s"),
    # TGI: minijinja (in a worker process)
    "tgi: 10^10 iterations": ("tgi", _LOOP, "out of fuel"),
    "tgi: 'a' * 10**9": ("tgi", "{{ 'a' * 1000000000 }}", EITHER),
    "tgi: ~ doubling": ("tgi", _GROW.replace("EXPR", "ns.s ~ ns.s"), EITHER),
    "tgi: indent(10**9)": ("tgi", "{{ 'a'|indent(1000000000) }}", EITHER),
    "tgi: 2 MB of output": ("tgi", "{{ 'a' * 2000000 }}", OUTPUT),
}


def _argv(kind: str, path: Path, report_dir: Path) -> list[str]:
    hostile = f"{kind}:{path}"
    train, deploy = (hostile, "hf:.") if kind == "jinja" else ("jinja:.", hostile)
    return ["check", "--model", "qwen2.5", "--train", train, "--deploy", deploy, "--examples", "3",
            "--report-dir", str(report_dir), "--quiet"]


def _peak_mib() -> float:
    """Peak RSS since the fork (VmHWM after clear_refs), or ru_maxrss, and that of any renderer child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024
    except OSError:
        pass
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _close_renderers() -> None:
    """Stop (and reap) renderer processes, so their peak RSS counts in RUSAGE_CHILDREN."""
    from harness.renderers import tgi
    from harness.renderers.ollama import gorender

    for proc in list(gorender._PROCESSES.values()):
        proc.close()
    tgi.compile_template.cache_clear()
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, tgi.TGITemplate) and obj._worker[0] is not None:
            obj._worker[0].close()


def _child(name: str, work: Path, result: Path) -> None:
    """Run one case in this (forked) process and write its measurements to ``result``."""
    from harness.cli import main

    kind, text, _ = CASES[name]
    path = work / ("Modelfile" if kind == "ollama" else "hostile.jinja")
    path.write_text(text)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
    except OSError:
        pass
    out = os.open(work / "stdout", os.O_WRONLY | os.O_CREAT)
    err = os.open(work / "stderr", os.O_WRONLY | os.O_CREAT)
    os.dup2(out, 1)
    os.dup2(err, 2)
    t0 = time.perf_counter()
    code = main(_argv(kind, path, work / "rep"))
    seconds = time.perf_counter() - t0
    sys.stdout.flush()
    sys.stderr.flush()
    _close_renderers()
    result.write_text(json.dumps({"exit": code, "seconds": seconds, "rss_mib": _peak_mib()}))
    os._exit(0)


def run(names: list[str], jobs: int = 1) -> list[dict]:
    """Each case in its own forked child (``jobs`` at a time); the tokenizer is loaded once, before forking."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import harness.cli  # noqa: F401 - imported (and the benign side compiled) once, before forking
    import harness.generate  # noqa: F401
    from harness.api import load_model, make_pair

    make_pair(load_model(model="qwen2.5"), "jinja:.", "hf:.")
    root = Path(tempfile.mkdtemp(prefix="harness-hostile-"))
    running: dict[int, tuple[str, Path, float]] = {}
    rows: dict[str, dict] = {}
    queue = list(names)
    while queue or running:
        while queue and len(running) < jobs:
            name = queue.pop(0)
            work = root / f"case{len(rows) + len(running)}-{abs(hash(name))}"
            work.mkdir()
            pid = os.fork()
            if pid == 0:
                try:
                    _child(name, work, work / "result.json")
                finally:
                    os._exit(70)
            running[pid] = (name, work, time.perf_counter())
        pid, _status = os.wait()
        name, work, started = running.pop(pid)
        result = work / "result.json"
        row = json.loads(result.read_text()) if result.exists() else {"exit": None, "seconds": None, "rss_mib": None}
        err = (work / "stderr").read_text(errors="replace") if (work / "stderr").exists() else ""
        lines = [line for line in err.splitlines() if line.startswith("harness: error: ")]
        message = lines[0][len("harness: error: "):] if lines else ""
        row.update(case=name, kind=CASES[name][0], wall=time.perf_counter() - started, stderr=err, message=message,
                   error_lines=len(lines), says_limit=re.search(CASES[name][2], message) is not None)
        rows[name] = row
    return [rows[n] for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1: clean timings)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case instead of the table")
    args = parser.parse_args()
    names = args.cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    rows = run(names, args.jobs)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{'case':30} {'exit':>4} {'seconds':>7} {'peak RSS MiB':>12}  message (after the template's path)")
    for r in rows:
        secs = f"{r['seconds']:.2f}" if r["seconds"] is not None else "-"
        rss = f"{r['rss_mib']:.0f}" if r["rss_mib"] is not None else "-"
        message = re.sub(r"^(template|Modelfile)='[^']*'\s*:?\s*", "", r["message"])
        print(f"{r['case']:30} {r['exit']!s:>4} {secs:>7} {rss:>12}  {message[:90]}")
    bad = [r["case"] for r in rows if r["exit"] != 2 or (r["seconds"] or 1e9) > MAX_SECONDS
           or (r["rss_mib"] or 1e9) > MAX_RSS_MIB or not r["says_limit"]]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} cases: exit 2 within {MAX_SECONDS:g} s, under {MAX_RSS_MIB} MiB, "
          "message naming the limit"
          + (f"; NOT: {', '.join(bad)}" if bad else ""))


if __name__ == "__main__":
    main()
