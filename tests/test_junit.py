"""``--format junit``: report.junit.xml is valid against the Jenkins xUnit JUnit schema, parses with junitparser,
counts what the report counts, and survives text XML cannot hold."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import xmlschema
from junitparser import Error, Failure, JUnitXml, Skipped

from harness.cli import main
from harness.report import FILES, render_junit
from tests.conftest import ROOT, fixture

pytestmark = pytest.mark.real_tokenizer

SCHEMA = ROOT / "tests" / "schemas" / "junit-10.xsd"
TRAIN = "jinja:" + fixture("planted/prompt_newline.jinja")
DEPLOYS = ["hf:" + fixture("templates/chatml.jinja"), "hf:."]


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One real run: a planted newline against two deploy templates (errors, warnings and skipped checks)."""
    out = tmp_path_factory.mktemp("junit")
    argv = ["check", "--model", "qwen2.5", "--train", TRAIN, "--examples", "40", "--report-dir", str(out),
            "--format", "json,junit", "--quiet"]
    for d in DEPLOYS:
        argv += ["--deploy", d]
    assert main(argv) == 1
    return out


def _report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def _xml(tmp_path: Path, report: dict) -> Path:
    path = tmp_path / "r.xml"
    path.write_text(render_junit(report), encoding="utf-8")
    return path


def test_valid_against_schema_and_counts_match_the_report(run, schema):
    path = run / FILES["junit"]
    schema.validate(str(path))
    report, xml = _report(run), JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == len(report["targets"]) == 2
    total = 0
    for suite, t in zip(suites, report["targets"]):
        verdicts = [c["verdict"] for c in t["checks"]]
        assert suite.name == f"template-harness.{t['train']} vs {t['deploy']}"
        assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (
            len(verdicts), verdicts.count("fail"), 0, verdicts.count("skipped"))
        cases = list(suite)
        assert [c.name for c in cases] == [c["name"] for c in t["checks"]]
        assert {c.classname for c in cases} == {suite.name}
        for case, check in zip(cases, t["checks"]):
            kinds = [type(r) for r in case.result]
            assert kinds == {"fail": [Failure], "skipped": [Skipped]}.get(check["verdict"], []), check["name"]
        total += suite.tests
    assert int(xml.tests) == total and int(xml.failures) == sum(s.failures for s in suites)


def test_failure_names_the_lead_class_and_lists_every_class(run):
    report = _report(run)
    xml = JUnitXml.fromfile(str(run / FILES["junit"]))
    t = report["targets"][1]
    check = next(c for c in t["checks"] if c["name"] == "prompt-prefix")
    case = next(c for c in list(xml)[1] if c.name == "prompt-prefix")
    failure = case.result[0]
    lead = check["classes"][0]
    assert failure.type == lead["cause"]
    assert lead["cause"] in failure.message and lead["diff_text"].split("\n")[0] in failure.message
    assert len(check["classes"]) >= 3
    for i, k in enumerate(check["classes"], 1):
        assert f"  {i}. {k['severity']} {k['cause']} at {k['where']}: {k['count']} conversation(s)" in failure.text
    assert lead["diff_text"] in failure.text
    assert json.dumps(lead["counterexample"], indent=2, ensure_ascii=False, sort_keys=True) in failure.text


def test_warnings_pass_unless_strict(run, tmp_path, schema):
    report = _report(run)
    warned = [(t, c) for t in report["targets"] for c in t["checks"] if c["verdict"] == "warn"]
    assert warned, "the fixture run should hold a warn-only check"
    t, c = warned[0]
    for strict, expected in ((False, []), (True, [Failure])):
        report["harness"]["inputs"]["strict"] = strict
        path = _xml(tmp_path, report)
        schema.validate(str(path))
        suite = list(JUnitXml.fromfile(str(path)))[report["targets"].index(t)]
        case = next(x for x in suite if x.name == c["name"])
        assert [type(r) for r in case.result] == expected
        if not strict:
            assert c["classes"][0]["cause"] in case.system_out
        else:
            assert case.result[0].type == c["classes"][0]["cause"]


def test_target_error_is_an_error_testcase(tmp_path, schema):
    code = main(["check", "--model", "qwen2.5", "--train", "jinja:" + fixture("bad/raises.jinja"), "--deploy",
                 "hf:.", "--examples", "20", "--report-dir", str(tmp_path), "--format", "json,junit", "--quiet"])
    assert code == 2
    path = tmp_path / FILES["junit"]
    schema.validate(str(path))
    suite = list(JUnitXml.fromfile(str(path)))[0]
    assert (suite.tests, suite.errors, suite.failures) == (1, 1, 0)
    error = list(suite)[0].result[0]
    assert isinstance(error, Error) and "rejected all" in error.message


HOSTILE = "nul\x00 bs\x08 vt\x0b ff\x0c esc\x1b lone\ud800 \udfff nonchar\ufffe\uffff ok\t\n"


def test_illegal_xml_characters_are_escaped_not_fatal(run, tmp_path, schema):
    report = _report(run)
    t = report["targets"][1]
    t["deploy"] = t["deploy"] + HOSTILE  # in attributes too
    check = next(c for c in t["checks"] if c["name"] == "prompt-prefix")
    lead = check["classes"][0]
    lead["counterexample"]["messages"][0]["content"] = HOSTILE
    lead["explanation"] += HOSTILE
    lead["diff_text"] = HOSTILE + lead["diff_text"]
    path = _xml(tmp_path, report)
    schema.validate(str(path))  # parses: every character left is legal XML 1.0
    xml = JUnitXml.fromfile(str(path))
    failure = next(c for c in list(xml)[1] if c.name == "prompt-prefix").result[0]
    for shown in ("nul\\x00", "bs\\x08", "vt\\x0b", "ff\\x0c", "esc\\x1b", "lone\\ud800", "\\udfff",
                  "nonchar\\ufffe\\uffff"):
        assert shown in failure.text + failure.message, shown
    assert "\\u0000" in failure.text  # the counterexample JSON escapes NUL itself
    assert "nul\\x00 bs\\x08" in list(xml)[1].name  # attribute values too


def test_deterministic_and_no_timestamps(run):
    report = _report(run)
    a, b = render_junit(report), render_junit(copy.deepcopy(report))
    assert a == b == (run / FILES["junit"]).read_text(encoding="utf-8")
    assert "timestamp=" not in a and "hostname=" not in a
    assert 'time="0"' in a


def test_a_run_clears_an_old_junit_report(tmp_path):
    stale = tmp_path / FILES["junit"]
    stale.write_text("<stale/>")
    main(["check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:.", "--examples", "5",
          "--report-dir", str(tmp_path), "--format", "json", "--quiet"])
    assert not stale.exists() and (tmp_path / "report.json").exists()
