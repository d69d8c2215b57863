"""Hostile templates (escapes, loops, recursion, output, memory and compile-time bombs, deep nesting) on every
engine: ``harness check`` exits 2 within 5 s, under 1.5 GiB peak RSS, with one message naming the limit.

The corpus and its runner are ``benchmarks/hostile.py``; it runs here in a child process, which loads the
tokenizer once and forks one grandchild per case (peak RSS measured there, renderer processes included)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.real_tokenizer

_spec = importlib.util.spec_from_file_location("hostile_corpus", ROOT / "benchmarks" / "hostile.py")
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hostile.py"), "--json", "--jobs", "2"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in rows}


def test_corpus_is_big_enough_and_covers_every_engine():
    assert len(hostile.CASES) >= 25
    assert {kind for kind, _, _ in hostile.CASES.values()} == {"jinja", "hf", "ollama", "tgi"}


@pytest.mark.parametrize("case", list(hostile.CASES), ids=list(hostile.CASES))
def test_hostile_template_is_stopped(case, results):
    r = results[case]
    assert r["exit"] == 2, r
    assert "Traceback" not in r["stderr"], r["stderr"]
    assert r["error_lines"] == 1, r["stderr"]
    assert r["seconds"] < hostile.MAX_SECONDS, r
    assert r["rss_mib"] < hostile.MAX_RSS_MIB, r
    assert r["says_limit"], f"{r['message']!r} should match {hostile.CASES[case][2]!r}"


# --- what is *not* hostile: refusals that transformers and vLLM make per request are counted rejections

#: The immutable-sandbox mutation HF and vLLM refuse: a tool prompt that collects required parameters with
#: ``list.append`` (the pattern of Meta's llama-models tool prompts), here only on conversations with tools.
APPENDING = ("{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + (m.content or '') + '<|im_end|>\\n' }}"
             "{% endfor %}{% if tools %}{% set required = [] %}{% for t in tools %}"
             "{% set _ = required.append(t.function.name) %}{% endfor %}{% endif %}"
             "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_mutation_refusal_is_a_counted_rejection_not_a_hostile_template(tmp_path):
    from harness.sandbox import ChatTemplate
    from harness.errors import RenderRejected
    from tests.conftest import result_of, sweep

    with pytest.raises(RenderRejected, match="refuses to mutate"):
        ChatTemplate(APPENDING, "append.jinja").render("train", messages=[], tools=[{"function": {"name": "f"}}])
    path = tmp_path / "append.jinja"
    path.write_text(APPENDING)
    target = sweep(f"jinja:{path}", "hf:.", n=60, tools="any")
    assert target.verdict != "error"  # the run goes on: shapes with tools are refused, the others checked
    prefix = result_of(target, "prompt-prefix")
    assert 0 < prefix.rejected_train < 60 and prefix.examples_run > 0


def test_unsafe_read_is_hostile_even_where_hf_would_print_nothing():
    from harness.errors import TemplateError
    from harness.sandbox import ChatTemplate

    with pytest.raises(TemplateError, match="unsafe"):
        ChatTemplate("{{ messages.__class__ }}", "evil.jinja").render("deploy", messages=[])


def test_an_alarm_that_lands_in_a_finalizer_still_stops_the_block():
    """Python swallows an exception raised in ``__del__`` ("Exception ignored"): a render's timeout that lands
    while the garbage collector finalizes an object (seen in CI: a `regex` pattern's ``__del__``) must ring again,
    not let the guarded loop run forever, and print nothing."""
    code = """
import time
from harness.limits import Guard, Limits, Timeout
class Slow:
    def __del__(self):
        t = time.time()
        while time.time() - t < 0.3:
            pass
start = time.time()
try:
    with Guard(Limits(timeout=0.1)):
        Slow()  # the alarm rings inside __del__
        while True:
            pass
except Timeout:
    print("stopped", round(time.time() - start, 1))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == "stopped 0.1", proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr


def test_the_alarm_handler_stays_installed_and_alarms_outside_a_guard_reach_the_handler_before_it():
    """Guard installs its SIGVTALRM handler once (not per render): a loop is still stopped, an alarm outside any
    guarded block still reaches the handler that was there before (also one installed between two guards)."""
    code = """
import signal, time
from harness.limits import Guard, Limits, Timeout
seen = []
def loop():
    try:
        with Guard(Limits(timeout=0.05)):
            while True:
                pass
    except Timeout:
        seen.append("timeout")
def burn():  # the CPU-time timer advances only while the process runs
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
signal.signal(signal.SIGVTALRM, lambda *a: seen.append("first"))
loop()
signal.setitimer(signal.ITIMER_VIRTUAL, 0.01); burn()
signal.signal(signal.SIGVTALRM, lambda *a: seen.append("second"))
loop()
signal.setitimer(signal.ITIMER_VIRTUAL, 0.01); burn()
print(" ".join(seen))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == "timeout first timeout second", proc.stdout + proc.stderr


def test_the_render_limit_is_cpu_time_not_wall_time():
    """A guarded block that waits (a busy machine, a CI runner sharing its cores) is not stopped; one that burns its
    CPU time is: a loaded machine gives no false "ran past the limit" on a correct template."""
    import time

    from harness.limits import Guard, Limits, Timeout

    with Guard(Limits(timeout=0.1)):
        time.sleep(0.3)  # three times the limit in wall time, almost no CPU
    with pytest.raises(Timeout):
        with Guard(Limits(timeout=0.1)):
            end = time.process_time() + 2
            while time.process_time() < end:
                pass


_LINE_CHILD = """
import sys, time
for line in sys.stdin:
    if line.startswith("sleep"):
        time.sleep(float(line.split()[1]))
    elif line.startswith("burn"):
        end = time.process_time() + float(line.split()[1])
        while time.process_time() < end:
            pass
    print('{"ok": true}', flush=True)
"""


def test_renderer_process_limit_is_cpu_time_not_wall_time():
    """The out-of-process engines' watchdog (Ollama's Go renderer, TGI's minijinja worker) counts the child's CPU
    time: a child waiting three times its limit answers; one burning CPU past it is killed."""
    from harness.limits import Limits
    from harness.renderers._process import LineProcess, ProcessDied

    io = LineProcess([sys.executable, "-c", _LINE_CHILD], Limits(timeout=0.3))
    try:
        assert io.exchange(["sleep 0.9"]) == [{"ok": True}]
        assert io.exchange(["sleep 0.4", "sleep 0.4", "burn 0.1"]) == [{"ok": True}] * 3  # each line its own limit
        with pytest.raises(ProcessDied) as died:
            io.exchange(["burn 5"])
        assert died.value.killed
    finally:
        io.close()


def test_renderer_process_that_neither_answers_nor_burns_is_killed(monkeypatch):
    """A child that waits forever (no CPU) is killed once the wall-time cap passes."""
    from harness.limits import Limits
    from harness.renderers import _process

    monkeypatch.setattr(_process, "MIN_WALL", 0.5)
    monkeypatch.setattr(_process, "WALL_FACTOR", 2.0)
    io = _process.LineProcess([sys.executable, "-c", _LINE_CHILD], Limits(timeout=0.2))
    try:
        with pytest.raises(_process.ProcessDied) as died:
            io.exchange(["sleep 30"])
        assert died.value.killed
    finally:
        io.close()


def test_cpu_seconds_reads_a_process_cpu_time():
    from harness.renderers._process import cpu_seconds

    before = cpu_seconds(os.getpid())
    if before is None:
        pytest.skip("no /proc on this system: the watchdog counts wall time")
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.2
    assert cpu_seconds(2 ** 22 + 12345) is None  # no such process
