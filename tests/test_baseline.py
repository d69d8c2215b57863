"""``--baseline``: only divergence classes the stored report lacks fail the run; identities ignore counts, order
and example conversations; a bad baseline is exit 2 before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from harness.cli import main
from harness.zoo import zoo_model_dir

pytestmark = pytest.mark.real_tokenizer

NEEDLE = "{{- '\\n</tool_response>' }}"
PLANTED = "{{- '\\n</tool_response>\\n' }}"  # one extra newline after every tool result: a prompt-prefix error
# class, and the tools check locates it at the tool result: two classes


def _check(cwd: Path, *extra: str, examples: int = 30, out: str = "rep") -> int:
    return main(["check", "--model", "qwen2.5", "--train", "jinja:train.jinja", "--deploy", "hf:serve.jinja",
                 "--examples", str(examples), "--report-dir", str(cwd / out), "--format", "json,md,junit,html",
                 "--quiet", *extra])


@pytest.fixture(scope="module")
def template() -> str:
    text = json.loads((zoo_model_dir("qwen2.5") / "tokenizer_config.json").read_text())["chat_template"]
    assert NEEDLE in text
    return text


@pytest.fixture(scope="module")
def baselines(tmp_path_factory, template) -> dict[str, Path]:
    """report.json of a consistent pair and of the planted tool-result newline (30 conversations each)."""
    root = tmp_path_factory.mktemp("baselines")
    out = {}
    for name, serve in (("consistent", template), ("planted", template.replace(NEEDLE, PLANTED))):
        d = root / name
        d.mkdir()
        (d / "train.jinja").write_text(template)
        (d / "serve.jinja").write_text(serve)
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(d)
            assert _check(d) == (0 if name == "consistent" else 1)
        out[name] = d / "rep" / "report.json"
    return out


@pytest.fixture
def work(tmp_path, template, monkeypatch) -> Path:
    (tmp_path / "train.jinja").write_text(template)
    (tmp_path / "serve.jinja").write_text(template)
    monkeypatch.chdir(tmp_path)  # specs are relative paths, as in CI: the same identities in every dir
    return tmp_path


def _plant(work: Path, template: str) -> None:
    (work / "serve.jinja").write_text(template.replace(NEEDLE, PLANTED))


def _report(work: Path) -> dict:
    return json.loads((work / "rep" / "report.json").read_text())


def test_unchanged_template_passes_with_0_new(work, baselines, capsys):
    assert _check(work, "--baseline", str(baselines["consistent"])) == 0
    out = capsys.readouterr().out
    unchanged = sum(len(c["classes"]) for t in _report(work)["targets"] for c in t["checks"])
    assert unchanged >= 1  # boundary-merge / user-control-text warnings: still divergences, not new
    assert f"baseline: 0 new, 0 fixed, {unchanged} unchanged\n" in out
    b = _report(work)["baseline"]
    assert (b["new"], b["fixed"], b["unchanged"]) == ([], [], unchanged)
    assert b["sha256"] == __import__("hashlib").sha256(baselines["consistent"].read_bytes()).hexdigest()
    assert b["path"] == str(baselines["consistent"])


def test_planted_divergence_is_new_and_fails(work, baselines, template, capsys):
    _plant(work, template)
    assert _check(work, "--baseline", str(baselines["consistent"])) == 1
    out = capsys.readouterr().out
    assert "baseline: 2 new, 0 fixed, " in out
    assert "new: prompt-prefix: error tools-rendered at tool (first ids text -> text) — jinja:train.jinja vs " \
           "hf:serve.jinja" in out
    assert "new: tools: error tools-rendered at messages[*](tool result)" in out
    report = _report(work)
    assert report["harness"]["exit_status"] == 1
    new = {n["check"]: n for n in report["baseline"]["new"]}
    assert sorted(new) == ["prompt-prefix", "tools"]
    assert new["prompt-prefix"] == {"train": "jinja:train.jinja", "deploy": "hf:serve.jinja",
                                    "check": "prompt-prefix", "severity": "error", "cause": "tools-rendered",
                                    "where": "tool", "first_pair": {"train": "text", "deploy": "text"}}
    assert (new["tools"]["cause"], new["tools"]["where"]) == ("tools-rendered", "messages[*](tool result)")
    assert "## Baseline" in (work / "rep" / "report.md").read_text()
    html = (work / "rep" / "report.html").read_text()
    new = html[html.index('<ul class="new">'):]
    assert '<section class="baseline" id="baseline">' in html and "tools-rendered at tool" in new[:new.index("</ul>")]
    case = next(c for c in list(JUnitXml.fromfile(str(work / "rep" / "report.junit.xml")))[0]
                if c.name == "prompt-prefix")
    assert [type(r) for r in case.result] == [Failure] and case.result[0].type == "tools-rendered"


def test_fixed_template_lists_the_fixed_class(work, baselines, capsys):
    assert _check(work, "--baseline", str(baselines["planted"])) == 0
    out = capsys.readouterr().out
    assert "baseline: 0 new, 2 fixed, " in out
    assert "fixed: prompt-prefix: error tools-rendered at tool" in out
    md = (work / "rep" / "report.md").read_text()
    assert "Fixed (in the baseline, not found now):" in md and "tools-rendered" in md.split("## Baseline")[1]
    html = (work / "rep" / "report.html").read_text()
    assert '<ul class="new">' not in html and "tools-rendered at tool" in html.split('<ul class="fixed">')[1]


def test_counts_order_and_examples_do_not_make_classes_new(work, baselines, template, capsys):
    _plant(work, template)
    old = json.loads(baselines["planted"].read_text())
    for t in old["targets"]:
        for c in t["checks"]:
            c["classes"].reverse()
            for k in c["classes"]:
                k["count"] *= 7
                k["counterexample"] = {"messages": [{"role": "user", "content": "other"}]}
                k["first_pair"] = {"train": {"id": 1, "piece": "x"}, "deploy": {"id": 2, "piece": "y"}}
    edited = work / "baseline.json"
    edited.write_text(json.dumps(old))
    assert _check(work, "--baseline", str(edited)) == 0  # prompt-prefix still fails, but in a known class
    out = capsys.readouterr().out
    classes = sum(len(c["classes"]) for t in old["targets"] for c in t["checks"])
    assert f"baseline: 0 new, 0 fixed, {classes} unchanged\n" in out
    junit = JUnitXml.fromfile(str(work / "rep" / "report.junit.xml"))
    assert int(junit.failures) == 0  # known classes do not fail a testcase either
    assert _check(work, "--baseline", str(baselines["planted"]), examples=20) == 0  # 20 < 30 conversations
    out = capsys.readouterr().out
    assert "baseline: 0 new, " in out and "examples 30 → 20" in out and "depend on them" in out


def test_new_warning_classes_fail_only_with_strict(work, baselines, capsys):
    old = json.loads(baselines["consistent"].read_text())
    dropped = 0
    for t in old["targets"]:
        for c in t["checks"]:
            dropped += len(c["classes"])
            c["classes"] = [k for k in c["classes"] if k["severity"] != "warning"]
            dropped -= len(c["classes"])
    assert dropped >= 1
    edited = work / "baseline.json"
    edited.write_text(json.dumps(old))
    assert _check(work, "--baseline", str(edited)) == 0
    assert f"baseline: {dropped} new, 0 fixed, 0 unchanged" in capsys.readouterr().out
    assert _check(work, "--baseline", str(edited), "--strict") == 1


def _bad(kind: str, work: Path, baselines: dict[str, Path]) -> Path:
    path = work / "bad.json"
    if kind == "missing":
        return work / "nope.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "not JSON":
        path.write_text("{not json")
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00junk")
    elif kind == "JSON list":
        path.write_text("[1, 2]")
    elif kind == "no targets":
        path.write_text(json.dumps({"harness": {"version": "0.1.0"}, "targets": []}))
    else:
        old = json.loads(baselines["planted"].read_text())
        for t in old["targets"]:
            if kind == "no class_pair":
                for c in t["checks"]:
                    for k in c["classes"]:
                        del k["class_pair"]
            else:  # "other targets"
                t["deploy"] = "hf:other.jinja"
        path.write_text(json.dumps(old))
    return path


BAD = {"missing": "no such file", "directory": "cannot read it", "not JSON": "not JSON", "binary": "not JSON",
       "JSON list": "not a harness report", "no targets": "not a harness report",
       "no class_pair": "class_pair", "other targets": "do not overlap"}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_baseline_exits_2_before_any_work(kind, work, baselines, capsys):
    path = _bad(kind, work, baselines)
    (work / "rep").mkdir()
    earlier = work / "rep" / "report.json"
    earlier.write_text("{}")  # a run that started would clear this first
    assert _check(work, "--baseline", str(path), examples=1_000_000) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"harness: error: --baseline={str(path)!r}: ")
    assert BAD[kind] in err and "Traceback" not in err
    if kind == "other targets":
        assert "jinja:train.jinja vs hf:other.jinja" in err and "jinja:train.jinja vs hf:serve.jinja" in err
        assert "regenerate the baseline" in err
    else:
        assert "pass --baseline a report.json" in err
    assert earlier.read_text() == "{}"
    shutil.rmtree(work / "rep")


def _synthetic(targets: dict[tuple[str, str], dict[str, list[tuple[str, str, str]]]], **harness) -> dict:
    def cls(severity: str, cause: str, where: str) -> dict:
        return {"severity": severity, "cause": cause, "where": where, "count": 1,
                "class_pair": {"train": "text", "deploy": 151645}}
    return {"harness": {"seed": 0, "examples": 10, **harness},
            "targets": [{"train": tr, "deploy": de, "checks": [{"name": n, "classes": [cls(*k) for k in ks]}
                                                                for n, ks in checks.items()]}
                        for (tr, de), checks in targets.items()]}


def test_compare_scopes_fixed_to_what_both_ran(tmp_path):
    from harness.baseline import compare, load_baseline, summary_line

    a, b, c = ("jinja:t", "hf:a"), ("jinja:t", "hf:b"), ("jinja:t", "hf:c")
    old = _synthetic({a: {"system": [("error", "default-system", "system")], "bos": [("error", "bos", "")]},
                      b: {"system": [("error", "system-text", "system")]}})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    now = _synthetic({a: {"system": [("error", "default-system", "system"), ("warning", "boundary-merge", "x")],
                          "segments": [("error", "segment-merge", "")]},
                      c: {"system": [("error", "template-text", "user")]}}, seed=1)
    got = compare(load_baseline(path), now)
    assert [(k.deploy, k.check, k.cause) for k in got.new] == [
        ("hf:a", "segments", "segment-merge"), ("hf:a", "system", "boundary-merge"),
        ("hf:c", "system", "template-text")]
    assert got.fixed == () and got.unchanged == 1  # bos was not run now, hf:b not checked: neither is "fixed"
    assert got.missing_targets == ("jinja:t vs hf:b",) and got.failed(strict=False)
    assert summary_line(got).startswith("baseline: 3 new, 0 fixed, 1 unchanged (the baseline was made with other "
                                        "sampling: seed 0 → 1;")
    del now["targets"][0]["checks"][0]["classes"][0]  # default-system gone: fixed
    got = compare(load_baseline(path), now)
    assert [k.cause for k in got.fixed] == ["default-system"] and got.fixed[0].first_pair == ("text", 151645)
    now["targets"][0]["checks"][0]["verdict"] = "skipped"  # a skipped check fixed nothing
    assert compare(load_baseline(path), now).fixed == ()
