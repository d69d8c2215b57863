"""pytester self-tests of the pytest plugin (``harness.plugin``, active in pytester runs via its ``pytest11`` entry point).

The inner sessions run in process (``pytester.runpytest``): the zoo tokenizer loaded by the first one stays
cached for the others, which keeps this file fast. Each inner run gets ``HARNESS_CACHE_DIR`` pointing at the
real zoo cache, because pytester moves ``HOME`` into its temp dir (the default cache is ``~/.cache/...``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

# Imported here, outside any inner run: pytester restores sys.modules after each in-process run, and a
# module first imported inside one would be dropped with its caches (the loaded tokenizers among them).
import harness.generate  # noqa: F401
import harness.plugin  # noqa: F401
import harness.report  # noqa: F401
import harness.runner  # noqa: F401
import harness.strategies  # noqa: F401
import harness.zoo  # noqa: F401
from harness.checks import CHECKS
from tests.conftest import fixture

CHATML = fixture("templates/chatml.jinja")
PLANTED = fixture("planted/prompt_newline.jinja")
# Resolved at import, before pytester moves HOME: the zoo dirs already built on this machine.
ZOO_CACHE = os.environ.get("HARNESS_CACHE_DIR") or str(Path("~/.cache/template-harness").expanduser())

ITEM = re.compile(r"::(?P<func>\w+)\[(?P<param>.*)\] (?P<outcome>PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


@pytest.fixture(autouse=True)
def _zoo_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", ZOO_CACHE)


@pytest.fixture(autouse=True, scope="module")
def _preload(request: pytest.FixtureRequest) -> None:
    """Load the tokenizer (and so transformers, numpy, ...) in this process before any inner run.

    An inner in-process run drops the modules it imported when it ends; numpy's C extension cannot be
    imported twice in one process, so a tokenizer first loaded inside an inner run breaks the next one.
    """
    if any(item.get_closest_marker("real_tokenizer") for item in request.session.items
           if item.module is request.module):
        from harness.zoo import load_zoo_tokenizer

        load_zoo_tokenizer("qwen2.5")


def gate_file(pytester: pytest.Pytester, *, train: str, deploy: str = "hf:" + CHATML, extra: str = "") -> None:
    """The three-line gate a user writes (``extra`` adds gate keyword arguments)."""
    pytester.makepyfile(test_gate=f"""
        from harness.plugin import gate

        test_x = gate(model="qwen2.5", train={train!r}, deploy=[{deploy!r}]{extra})
    """)


def by_check(result: pytest.RunResult) -> dict[str, str]:
    """``check name -> outcome`` from a ``-v`` run of one gate target."""
    out: dict[str, str] = {}
    for line in result.outlines:
        m = ITEM.search(line)
        if m and m["func"] == "test_x":
            check = next(c for c in CHECKS if m["param"].endswith("-" + c))
            out[check] = m["outcome"]
    return out


# --- gates -----------------------------------------------------------------------------------------------


@pytest.mark.real_tokenizer
def test_gate_on_identical_templates_passes_one_item_per_check(pytester: pytest.Pytester) -> None:
    gate_file(pytester, train="jinja:" + CHATML, extra=", examples=60")
    result = pytester.runpytest("-v")
    # qwen2.5 has no BOS, and jinja: tokenises the whole string, so bos and segments have nothing to check;
    # hf: names no tool or reasoning parser, so the round-trip checks are skipped
    result.assert_outcomes(passed=6, skipped=6)
    assert by_check(result) == {"prompt-prefix": "PASSED", "system": "PASSED", "answer-stop": "PASSED",
                                "bos": "SKIPPED", "special-tokens": "PASSED", "segments": "SKIPPED", "stop-words": "PASSED",
                                "truncation": "SKIPPED", "tools": "PASSED", "reasoning": "SKIPPED",
                                "tool-roundtrip": "SKIPPED", "reasoning-roundtrip": "SKIPPED"}
    result.stdout.fnmatch_lines(["*collected 12 items*"])
    assert result.ret == pytest.ExitCode.OK
    # one sweep shared by the six items, announced in one summary line
    result.stdout.fnmatch_lines(["template-harness: 1 target(s) swept, 0 inconsistent"])


@pytest.mark.real_tokenizer
def test_gate_on_planted_newline_fails_prompt_prefix_only(pytester: pytest.Pytester) -> None:
    gate_file(pytester, train="jinja:" + PLANTED, extra=", examples=60")
    result = pytester.runpytest("-v")
    # The planted extra "\n" after each user turn breaks the prompt for every answer. Every system variant
    # shares that divergence, so it is prompt-prefix's alone: the system check does not blame the system.
    result.assert_outcomes(passed=5, skipped=6, failed=1)
    assert by_check(result) == {"prompt-prefix": "FAILED", "system": "PASSED", "answer-stop": "PASSED",
                                "bos": "SKIPPED", "special-tokens": "PASSED", "segments": "SKIPPED", "stop-words": "PASSED",
                                "truncation": "SKIPPED", "tools": "PASSED", "reasoning": "SKIPPED",
                                "tool-roundtrip": "SKIPPED", "reasoning-roundtrip": "SKIPPED"}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "At token" in out and "counterexample" in out
    result.stdout.fnmatch_lines([
        "*_ test_x[[]hf:*-prompt-prefix[]] _*",
        "60 errors, 0 warnings in 60 conversations",
        "[[]prompt-prefix[]] error: *",
        "At token 4 (*): 271 '␤␤' != 198 '␤'",
    ])
    # the shrunk counterexample: one empty user turn and one empty answer
    assert 'counterexample: {"messages": [{"content": "", "role": "user"}, {"content": "", "role": "assistant"}]}' \
        in out
    assert "Traceback" not in out  # failures are reported without a Python traceback (pytrace=False)
    result.stdout.fnmatch_lines([f"template-harness: 1 target(s) swept, 1 inconsistent: jinja:{PLANTED} vs hf:{CHATML}"])


@pytest.mark.real_tokenizer
def test_gate_with_two_deploy_specs_gives_items_per_spec_and_one_sweep_each(pytester: pytest.Pytester) -> None:
    """ChatML trained, served once with the same ChatML and once with Qwen2.5's own template (which
    injects its default system prompt): only the second target's prompt-prefix item fails."""
    pytester.makepyfile(test_gate=f"""
        from harness.plugin import gate

        test_x = gate(model="qwen2.5", train={"jinja:" + CHATML!r}, deploy=[{"hf:" + CHATML!r}, "hf:."],
                      examples=30, checks=["prompt-prefix", "answer-stop"])
    """)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*::test_x[[]hf:.-prompt-prefix[]] FAILED*",
                                 "At token 1 (*): 872 'user' != 8948 'system'"])
    result.stdout.fnmatch_lines([f"template-harness: 2 target(s) swept, 1 inconsistent: jinja:{CHATML} vs hf:."])


@pytest.mark.real_tokenizer
@pytest.mark.slow
def test_gate_under_xdist_reports_every_target_once_as_a_serial_run_does(pytester: pytest.Pytester,
                                                                         tmp_path: Path) -> None:
    """``pytest -n 2``: items of one target may run on both workers; the controller prints the summary line and
    writes the report, byte-identical to a serial run's (a worker's partial report would lose a target)."""
    pytester.makepyfile(test_gate=f"""
        from harness.plugin import gate

        test_x = gate(model="qwen2.5", train={"jinja:" + CHATML!r}, deploy=[{"hf:" + CHATML!r}, "hf:."],
                      examples=30, checks=["prompt-prefix", "answer-stop", "system"])
    """)
    runs = {}
    for name, args in (("serial", ()), ("xdist", ("-p", "xdist", "-n", "2"))):
        out = tmp_path / name
        result = pytester.runpytest_subprocess(*args, "--harness-report-dir", str(out))
        result.assert_outcomes(passed=4, failed=2)
        result.stdout.fnmatch_lines([f"template-harness: 2 target(s) swept, 1 inconsistent: jinja:{CHATML} vs hf:."])
        runs[name] = (out / "report.json").read_bytes(), (out / "report.md").read_bytes()
    assert [t["deploy"] for t in json.loads(runs["xdist"][0])["targets"]] == ["hf:" + CHATML, "hf:."]
    assert runs["xdist"] == runs["serial"]


# --- options and their ini twins -------------------------------------------------------------------------


def read_report(path: Path) -> dict:
    return json.loads((path / "report.json").read_text(encoding="utf-8"))


@pytest.mark.real_tokenizer
def test_cli_options_examples_seed_and_report_dir(pytester: pytest.Pytester, tmp_path: Path) -> None:
    gate_file(pytester, train="jinja:" + CHATML)  # no examples= in the gate: the option decides
    out_dir = tmp_path / "cli-reports"
    result = pytester.runpytest("--harness-examples", "30", "--harness-seed", "3", "--harness-report-dir",
                                str(out_dir))
    result.assert_outcomes(passed=6, skipped=6)
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.json", "report.md"]
    result.stdout.fnmatch_lines([f"template-harness report: {out_dir / 'report.json'}",
                                 f"template-harness report: {out_dir / 'report.md'}"])
    report = read_report(out_dir)
    assert report["harness"]["examples"] == 30 and report["harness"]["seed"] == 3
    (target,) = report["targets"]
    assert target["train"] == "jinja:" + CHATML and target["deploy"] == "hf:" + CHATML
    assert target["verdict"] == "consistent"
    runs = {c["name"]: c["examples_run"] for c in target["checks"]}
    assert runs["prompt-prefix"] == 30 and runs["bos"] == 0
    md = (out_dir / "report.md").read_text(encoding="utf-8")
    assert "seed 3, 30 conversations per target" in md


@pytest.mark.real_tokenizer
def test_ini_twins_give_the_same_byte_identical_report(pytester: pytest.Pytester, tmp_path: Path) -> None:
    gate_file(pytester, train="jinja:" + CHATML)
    cli_dir, ini_dir = tmp_path / "cli", tmp_path / "ini"
    cli = pytester.runpytest("--harness-examples", "30", "--harness-seed", "3", "--harness-report-dir", str(cli_dir))
    cli.assert_outcomes(passed=6, skipped=6)
    pytester.makeini(f"[pytest]\nharness_examples = 30\nharness_seed = 3\nharness_report_dir = {ini_dir}\n")
    ini = pytester.runpytest()
    ini.assert_outcomes(passed=6, skipped=6)
    assert read_report(ini_dir)["harness"] == {"examples": 30, "seed": 3, "version": harness.__version__}
    # same run, same seed -> byte-identical report, whether the settings came from the command line or the ini
    assert (ini_dir / "report.json").read_bytes() == (cli_dir / "report.json").read_bytes()
    assert (ini_dir / "report.md").read_bytes() == (cli_dir / "report.md").read_bytes()


@pytest.mark.real_tokenizer
def test_command_line_overrides_ini_and_seed_changes_the_sweep(pytester: pytest.Pytester, tmp_path: Path) -> None:
    gate_file(pytester, train="jinja:" + CHATML, extra=", checks=['prompt-prefix']")
    pytester.makeini(f"[pytest]\nharness_examples = 30\nharness_seed = 3\nharness_report_dir = {tmp_path / 'ini'}\n")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--harness-examples", "12", "--harness-seed", "4",
                       "--harness-report-dir", str(tmp_path / "cli")).assert_outcomes(passed=1)
    ini, cli = read_report(tmp_path / "ini"), read_report(tmp_path / "cli")
    assert ini["harness"]["examples"] == 30 and ini["harness"]["seed"] == 3
    assert cli["harness"]["examples"] == 12 and cli["harness"]["seed"] == 4
    assert cli["targets"][0]["checks"][0]["examples_run"] == 12


@pytest.mark.real_tokenizer
def test_gate_arguments_override_options(pytester: pytest.Pytester, tmp_path: Path) -> None:
    gate_file(pytester, train="jinja:" + CHATML, extra=", examples=7, seed=5, checks=['prompt-prefix']")
    pytester.runpytest("--harness-examples", "30", "--harness-seed", "3",
                       "--harness-report-dir", str(tmp_path)).assert_outcomes(passed=1)
    check = read_report(tmp_path)["targets"][0]["checks"][0]
    assert check["name"] == "prompt-prefix" and check["examples_run"] == 7


@pytest.mark.real_tokenizer
def test_strict_turns_boundary_merge_warnings_into_failures(pytester: pytest.Pytester) -> None:
    """Qwen2.5's own template trained whole-string (TRL) vs served by vLLM: only boundary-merge warnings."""
    gate_file(pytester, train="jinja:.", deploy="hf:.", extra=", examples=300, checks=['prompt-prefix']")
    lenient = pytester.runpytest("-v")
    lenient.assert_outcomes(passed=1)
    assert lenient.ret == pytest.ExitCode.OK

    for strict in (("--harness-strict",), ("-o", "harness_strict=true")):  # the option and its ini twin
        result = pytester.runpytest("-v", *strict)
        result.assert_outcomes(failed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["0 errors, * warnings in 300 conversations",
                                     "[[]prompt-prefix[]] warning: boundary merge*"])


@pytest.mark.real_tokenizer
def test_gate_strict_argument_overrides_the_option(pytester: pytest.Pytester) -> None:
    gate_file(pytester, train="jinja:.", deploy="hf:.", extra=", examples=300, checks=['prompt-prefix'], strict=False")
    pytester.runpytest("--harness-strict").assert_outcomes(passed=1)


@pytest.mark.parametrize("args,ini", [
    (("--harness-seed", "abc"), None),
    (("--harness-examples", "many"), None),
    (("--harness-examples", "0"), None),
    (("--harness-seed", "-1"), None),
    ((), "[pytest]\nharness_examples = lots\n"),
    ((), "[pytest]\nharness_seed = 1.5\n"),
])
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], ini: str | None) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    if ini:
        pytester.makeini(ini)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--harness-examples" in err and "Traceback" not in err + result.stdout.str()


def test_options_and_ini_twins_are_documented_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*template-harness*"])
    out = result.stdout.str()
    for name in ("model", "model-dir", "train", "deploy", "examples", "seed", "report-dir", "strict"):
        assert f"--harness-{name}" in out
        assert "harness_" + name.replace("-", "_") in out


def test_no_summary_line_without_a_gate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "template-harness:" not in result.stdout.str()


# --- harness_pair + assert_consistent inside hypothesis ---------------------------------------------------

PROPERTY_TEST = """
from hypothesis import HealthCheck, given, settings

from harness.plugin import assert_consistent
from harness.strategies import conversations


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(conversations(max_turns=2))
def test_consistent(harness_pair, conv):
    assert_consistent(harness_pair, conv)
"""


@pytest.mark.real_tokenizer
def test_harness_pair_property_passes_on_identical_templates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_prop=PROPERTY_TEST)
    result = pytester.runpytest("--harness-train", "jinja:" + CHATML, "--harness-deploy", "hf:" + CHATML)
    result.assert_outcomes(passed=1)


@pytest.mark.real_tokenizer
def test_harness_pair_property_shrinks_planted_bug(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_prop=PROPERTY_TEST)
    result = pytester.runpytest("--harness-train", "jinja:" + PLANTED, "--harness-deploy", "hf:" + CHATML)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["E * AssertionError: [[]prompt-prefix[]] error: *", "E * At token *"])
    # hypothesis reports the shrunk example ("Falsifying example" before 6.1xx, "Failing test case" now)
    assert re.search(r"Falsifying example|Failing test case", out)
    assert 'counterexample: {"messages": [{"content": "", "role": "user"}, {"content": "", "role": "assistant"}]}' \
        in out


@pytest.mark.real_tokenizer
def test_harness_pair_property_with_chosen_checks(pytester: pytest.Pytester) -> None:
    """``checks=`` limits assert_consistent: the planted bug does not touch answer-stop."""
    pytester.makepyfile(test_prop=PROPERTY_TEST.replace("assert_consistent(harness_pair, conv)",
                                                        "assert_consistent(harness_pair, conv, checks=['answer-stop'])"))
    result = pytester.runpytest("--harness-train", "jinja:" + PLANTED, "--harness-deploy", "hf:" + CHATML)
    result.assert_outcomes(passed=1)


@pytest.mark.real_tokenizer  # harness_pair loads the default model before it reads the specs
def test_harness_pair_bad_spec_is_a_clean_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_prop="def test_pair(harness_pair):\n    pass\n")
    result = pytester.runpytest("--harness-train", "nosuchkind:x")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*template-harness input error: *nosuchkind*"])


# --- assertion explanations ------------------------------------------------------------------------------


def test_assertrepr_compare_explains_encoded_mismatch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_enc="""
        from harness.renderers.base import Encoded

        def test_eq():
            a = Encoded(ids=(151644, 872, 198, 9707, 151645))
            b = Encoded(ids=(151644, 872, 198, 271, 151645))
            assert a == b
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E * Encoded ids differ:", "E * At token 3 *9707* != 271*"])


def test_assertrepr_compare_leaves_equal_length_other_types_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_other="""
        def test_eq():
            assert [1, 2, 3] == [1, 2, 4]
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert "Encoded ids differ" not in result.stdout.str()
    result.stdout.fnmatch_lines(["E * At index 2 diff: 3 != 4"])


def test_plugin_registers_only_its_own_marker(pytester: pytest.Pytester) -> None:
    """A user's session lists harness_gate, not this repository's slow/real_tokenizer markers."""
    result = pytester.runpytest("--markers")
    text = result.stdout.str()
    assert "@pytest.mark.harness_gate" in text
    assert "@pytest.mark.slow" not in text, text
    assert "@pytest.mark.real_tokenizer" not in text
