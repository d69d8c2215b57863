"""``harness check --data FILE``: real training records read as conversations (harness/data), named in findings
and reports, bad records refused with file:line, and ``--harness-data`` in the pytest plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.data import open_data, scan
from harness.errors import InputError
from tests.conftest import FIXTURES

DATA = FIXTURES / "data"
CHATML = str(FIXTURES / "templates/chatml.jinja")
DEFAULT_SYSTEM = str(FIXTURES / "planted/default_system.jinja")
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def u(text: str) -> dict:
    return {"role": "user", "content": text}


def a(text: str) -> dict:
    return {"role": "assistant", "content": text}


def s(text: str) -> dict:
    return {"role": "system", "content": text}


CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
TOOL = {"role": "tool", "content": '{"temp": 3}'}

# file -> (format, [(record name, OpenAI form or None when the trainer skips it)])
EXPECTED = {
    "openai.jsonl": ("openai", [
        ("openai.jsonl:1", {"messages": [s("You are terse."), u("Capital of France?"), a("Paris.")]}),
        ("openai.jsonl:2", {"messages": [u("Say hi."), a("\nHi!")]}),
        ("openai.jsonl:3", {"messages": [u("Weather in Oslo?"), CALL, TOOL, a("3 degrees.")], "tools": [WEATHER]}),
        ("openai.jsonl:4", {"messages": [u("2+2?"), a("4")]})]),
    "sharegpt.json": ("sharegpt", [
        ("sharegpt.json[0]", {"messages": [s("You are terse."), u("Capital of France?"), a("Paris.")]}),
        ("sharegpt.json[1]", {"messages": [u("Say hi."), a("\nHi!"), u("Again."), a("Hi again.")]}),
        ("sharegpt.json[2]", {"messages": [u("Weather in Oslo?"), CALL, TOOL, a("3 degrees.")], "tools": [WEATHER]}),
        ("sharegpt.json[3]", None),  # gpt after gpt: LLaMA-Factory skips it
        ("sharegpt.json[4]", {"messages": [s("Be kind."), u("Thanks!"), a("\nYou are welcome.")]})]),
    "alpaca.json": ("alpaca", [
        ("alpaca.json[0]", {"messages": [s("You translate."), u("Translate to French.\ncat"), a("chat")]}),
        ("alpaca.json[1]", {"messages": [u("Name a colour."), a("\nBlue.")]}),
        ("alpaca.json[2]", {"messages": [u("Name a colour."), a("Red."), u("And another?"), a("Green.")]}),
        ("alpaca.json[3]", None)]),  # output null: unsupervised, dropped
    "sharegpt_tags.jsonl": ("sharegpt", [  # dataset_info.json maps role/content tags and a 'sys' column
        ("sharegpt_tags.jsonl:1", {"messages": [s("Be brief."), u("Hi?"), a("Hello.")]}),
        ("sharegpt_tags.jsonl:2", {"messages": [u("Bye?"), a("\nBye.")]})]),
    "xtuner.jsonl": ("xtuner", [
        ("xtuner.jsonl:1", {"messages": [s("You are terse."), u("Capital of France?"), a("Paris.")]}),
        ("xtuner.jsonl:2", {"messages": [u("Say hi."), a("\nHi!"), u("Again."), a("Hi again.")]})]),
    "paddlenlp.jsonl": ("paddlenlp", [
        ("paddlenlp.jsonl:1", {"messages": [s("You are terse."), u("Capital of France?"), a("Paris.")]}),
        ("paddlenlp.jsonl:2", {"messages": [u("Say hi."), a("\nHi!"), u("Again."), a("Hi again.")]}),
        ("paddlenlp.jsonl:3", {"messages": [u("2+2?"), a("4")]})]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_reads_to_the_expected_conversations(name: str) -> None:
    fmt, want = EXPECTED[name]
    source = open_data(DATA / name)
    assert source.format == fmt
    got = [(r.name, r.conversation and r.conversation.to_openai()) for r in source.records()]
    assert got == want
    for r in source.records():
        assert r.conversation is None or r.conversation.source == r.name


def test_paddlenlp_context_is_kept_in_meta_and_alpaca_system_needs_the_mapping(tmp_path: Path) -> None:
    first = next(open_data(DATA / "paddlenlp.jsonl").records()).conversation
    assert dict(first.meta["context"]) == {"system": "You are terse."}
    # an alpaca dataset_info entry whose columns leave out 'system' reads no system (DatasetAttr.join)
    (tmp_path / "d.json").write_text(json.dumps([{"instruction": "q", "output": "r", "system": "S"}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json", "columns": {
        "prompt": "instruction", "response": "output"}}}))
    assert next(open_data(tmp_path / "d.json").records()).conversation.system is None
    (tmp_path / "dataset_info.json").unlink()
    assert next(open_data(tmp_path / "d.json").records()).conversation.system == "S"


def test_the_trainer_skipped_records_are_counted_and_named() -> None:
    found = scan(open_data(DATA / "sharegpt.json"))
    assert (found.records, found.skipped, found.skipped_names) == (5, 1, ("sharegpt.json[3]",))
    assert "role 'gpt' after 'gpt'" in found.first_reason


BAD = {
    "invalid JSON line": ("bad.jsonl", '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", '
                          '"content": "b"}]}\n{"messages": [\n', "bad.jsonl:2: invalid JSON"),
    "missing key": ("bad.jsonl", '{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}\n'
                    '{"conversation": []}\n', "bad.jsonl:2: missing key 'conversations'"),
    "unknown role tag": ("bad.jsonl", '{"conversations": [{"from": "human", "value": "a"}, {"from": "gtp", "value": '
                         '"b"}]}\n', "bad.jsonl:1: conversations[1].from='gtp': unknown role tag"),
    "empty file": ("bad.jsonl", "\n\n", "bad.jsonl: empty file"),
    "broken array": ("bad.json", '[{"instruction": "a", "output": "b"}, {"instruction": ', "bad.json[1]: invalid JSON"),
    "system not first": ("bad.jsonl", json.dumps({"messages": [u("a"), s("b"), a("c")]}) + "\n",
                         "bad.jsonl:1: messages[1].role='system': a system message must come first"),
    "all skipped": ("bad.jsonl", '{"conversations": [{"from": "gpt", "value": "a"}]}\n', "bad.jsonl: all 1 records are "
                    "skipped by the trainer (first: bad.jsonl:1: role 'gpt' opening the conversation"),
    "unknown format": ("bad.jsonl", '{"text": "hello"}\n', "bad.jsonl:1: cannot tell the data format"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_records_exit_2_naming_file_and_line_and_write_nothing(case: str, tmp_path: Path, capsys) -> None:
    file, content, message = BAD[case]
    (tmp_path / file).write_text(content)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "report.json").write_text("{}")  # an earlier run's report stays untouched
    code = main(["check", "--train", "jinja:" + CHATML, "--deploy", "hf:" + CHATML, "--data", str(tmp_path / file),
                 "--report-dir", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("harness: error: " + message), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["report.json"]
    assert (tmp_path / "reports" / "report.json").read_text() == "{}"


def test_data_options_without_data_and_unknown_format_are_exit_2(capsys) -> None:
    assert main(["check", "--train", "jinja:" + CHATML, "--deploy", "hf:" + CHATML, "--data-format", "sharegpt"]) == 2
    assert "pass --data FILE" in capsys.readouterr().err
    with pytest.raises(InputError, match="--data-format='csv': unknown format"):
        open_data(DATA / "openai.jsonl", fmt="csv")


def _run(tmp_path: Path, name: str, *extra: str) -> tuple[int, dict, Path]:
    out = tmp_path / name
    code = main(["check", "--model", "qwen2.5", "--train", "jinja:" + CHATML, "--deploy", "hf:" + DEFAULT_SYSTEM,
                 "--data", str(DATA / "sharegpt.json"), "--report-dir", str(out), "--format", "json,md,html",
                 "--quiet", *extra])
    return code, json.loads((out / "report.json").read_text()), out


def _classes(report: dict, check: str) -> list[dict]:
    return next(c for c in report["targets"][0]["checks"] if c["name"] == check)["classes"]


@pytest.mark.real_tokenizer
def test_records_are_named_in_findings_and_reports_and_are_their_own_counterexample(tmp_path: Path) -> None:
    """A ChatML model served with a template that injects a default system prompt: every record without a system
    message fails, named; the record with an answer starting with "\\n" is a boundary-merge warning, named."""
    code, report, out = _run(tmp_path, "a")
    assert code == 1
    assert report["data"]["records"] == 5 and report["data"]["skipped"] == {
        "count": 1, "first": ["sharegpt.json[3]"], "first_reason": "sharegpt.json[3]: role 'gpt' after 'gpt' "
                                                                   "(LLaMA-Factory skips the record)"}
    assert report["targets"][0]["examples"] == 4  # the kept records only: no generated conversations
    by_cause = {k["cause"]: k for k in _classes(report, "prompt-prefix")}
    default = by_cause["default-system"]
    assert default["records"] == {"count": 2, "first": ["sharegpt.json[1]", "sharegpt.json[2]"]}
    assert default["counterexample_source"] == "sharegpt.json[1]" and default["shrunk"] is False
    # the counterexample is the record itself, not a shrunk conversation
    assert default["counterexample"] == EXPECTED["sharegpt.json"][1][1][1]
    merge = by_cause["boundary-merge"]
    assert merge["severity"] == "warning"
    assert merge["records"] == {"count": 1, "first": ["sharegpt.json[4]"]}
    assert merge["counterexample"] == EXPECTED["sharegpt.json"][1][4][1]
    md = (out / "report.md").read_text()
    assert "Record `sharegpt.json[1]` (as found):" in md
    assert "**Records:** 1 record(s): data-dependent" in md and "(boundary-merge, warning at assistant (answer " \
        "start)): sharegpt.json[4]" in md
    assert "2 record(s): a default system prompt is injected on one side only (default-system, error at system " \
           "(none given)): sharegpt.json[1], [2]" in md
    assert "1 record(s) skipped as the trainer skips them: sharegpt.json[3]" in md
    assert "4 records + 0 generated conversations per target" in md
    html = (out / "report.html").read_text()
    assert "Record sharegpt.json[1] (as found)" in html and "sharegpt.json[4]" in html
    # structural checks run on plain variants: they name the records but their counterexample is no record
    system = _classes(report, "system")[0]
    assert system["records"]["first"] == ["sharegpt.json[0]", "sharegpt.json[1]", "sharegpt.json[2]",
                                          "sharegpt.json[4]"]
    assert system["counterexample_source"] is None
    # determinism: a second run writes byte-identical reports
    _, _, again = _run(tmp_path, "b")
    for name in ("report.json", "report.md", "report.html"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.real_tokenizer
def test_examples_given_with_data_sweeps_records_first_then_generated(tmp_path: Path, capsys) -> None:
    code, report, _ = _run(tmp_path, "c", "--examples", "6")
    assert report["targets"][0]["examples"] == 4 + 6 and report["data"]["generated"] == 6
    assert report["harness"]["examples"] == 6
    # the generated conversations are not records: the record lists count only records
    merge = next(k for k in _classes(report, "prompt-prefix") if k["cause"] == "default-system")
    assert merge["records"]["count"] == 2 and merge["count"] >= 2


@pytest.mark.real_tokenizer
def test_cli_prints_record_names(tmp_path: Path, capsys) -> None:
    main(["check", "--model", "qwen2.5", "--train", "jinja:" + CHATML, "--deploy", "hf:" + CHATML,
          "--data", str(DATA / "openai.jsonl"), "--report-dir", str(tmp_path), "--checks", "prompt-prefix"])
    out = capsys.readouterr().out
    assert "1 record(s): data-dependent" in out and "openai.jsonl:2" in out
    assert 'record openai.jsonl:2 (as found): {"messages": [{"content": "Say hi.", "role": "user"}' in out


# --- agreement with LLaMA-Factory's own converter -------------------------------------------------------------


def _lf_shipped_examples() -> list[Path]:
    """Example dataset files shipped inside the installed llamafactory package (0.9.5 ships none)."""
    import importlib.util

    spec = importlib.util.find_spec("llamafactory")
    root = Path(spec.origin).parent
    return sorted(p for p in root.rglob("*") if p.suffix in (".json", ".jsonl") and p.name != "dataset_info.json")


def _lf_aligned(path: Path, entry: dict) -> list[tuple | None]:
    """LLaMA-Factory's converter on every record: ``(system, tools, messages)``, None for a record it skips."""
    from harness._lf_stub import prepare

    prepare()
    from llamafactory.data.converter import AlpacaDatasetConverter, SharegptDatasetConverter
    from llamafactory.data.parser import DatasetAttr

    attr = DatasetAttr("file", dataset_name=entry["file_name"])
    attr.join(entry)
    convert = (SharegptDatasetConverter if attr.formatting == "sharegpt" else AlpacaDatasetConverter)(attr, None)
    from harness.data.stream import iter_raw

    raws = [raw for _, raw in iter_raw(path)]
    columns = {k for raw in raws for k in raw}  # ``datasets`` gives every record every column (None when absent)
    out = []
    for raw in raws:
        got = convert({k: raw.get(k) for k in columns})
        if len(got["_prompt"]) % 2 != 1 or len(got["_response"]) != 1:  # the supervised processor drops it
            out.append(None)
            continue
        out.append((got["_system"] or "", json.loads(got["_tools"]) if got["_tools"] else [],
                    [_lf_message(m) for m in got["_prompt"] + got["_response"]]))
    return out


def _lf_message(m: dict) -> dict:
    return {"role": m["role"], "content": json.loads(m["content"]) if m["role"] == "function" else m["content"]}


@pytest.mark.real_tokenizer
def test_sharegpt_and_alpaca_agree_with_llamafactorys_converter() -> None:
    """Every fixture record (and every example file the installed llamafactory ships: counted, 0 in 0.9.5) read by
    the harness and aligned by the ``llamafactory:`` renderer equals LLaMA-Factory's own converter's output."""
    from tests.conftest import needs_lf  # noqa: F401 - importable: the test needs the optional extra
    from harness.api import load_model, make_pair

    pytest.importorskip("llamafactory")
    renderer = make_pair(load_model(model="qwen2.5"), "llamafactory:qwen", "hf:" + CHATML).train
    info = json.loads((DATA / "dataset_info.json").read_text())
    compared = skipped = 0
    for name, entry in sorted(info.items()):
        want = _lf_aligned(DATA / entry["file_name"], entry)
        got = []
        for record in open_data(DATA / entry["file_name"], name=name).records():
            if record.conversation is None:
                got.append(None)
                skipped += 1
                continue
            system, tools, aligned, _ = renderer.dataset(record.conversation)
            got.append((system, json.loads(tools) if tools else [], [_lf_message(m) for m in aligned]))
            compared += 1
        assert got == want, name
    assert (compared, skipped) == (9, 2)
    assert _lf_shipped_examples() == []  # nothing more to compare against in llamafactory 0.9.5's wheel


# --- the pytest plugin: --harness-data ------------------------------------------------------------------------

from tests.test_plugin import _preload, _zoo_cache, gate_file  # noqa: E402,F401 - autouse fixtures for pytester runs


@pytest.mark.real_tokenizer
def test_plugin_harness_data_sweeps_the_records_and_names_them(pytester: pytest.Pytester, tmp_path: Path) -> None:
    gate_file(pytester, train="jinja:" + CHATML, deploy="hf:" + DEFAULT_SYSTEM, extra=", checks=['prompt-prefix']")
    result = pytester.runpytest("-v", "--harness-data", str(DATA / "sharegpt.json"),
                                "--harness-report-dir", str(tmp_path / "r"))
    result.assert_outcomes(failed=1)
    # the four records LLaMA-Factory keeps, no generated conversation (--harness-examples was not given)
    result.stdout.fnmatch_lines(["2 errors, 1 warnings in 4 conversations", "[[]prompt-prefix[]] error: *",
                                 "record: sharegpt.json[1] (as found)"])
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    lead = report["targets"][0]["checks"][0]
    assert lead["counterexample_source"] == "sharegpt.json[1]"
    # with --harness-examples given too: the records, then that many generated conversations
    both = pytester.runpytest("--harness-data", str(DATA / "sharegpt.json"), "--harness-examples", "5",
                              "--harness-report-dir", str(tmp_path / "b"))
    both.assert_outcomes(failed=1)
    assert json.loads((tmp_path / "b" / "report.json").read_text())["targets"][0]["examples"] == 4 + 5


@pytest.mark.real_tokenizer
def test_plugin_harness_data_bad_record_fails_the_gate_naming_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"conversations": [{"from": "human", "value": "a"}, {"from": "gtp", '
                                        '"value": "b"}]}\n')
    gate_file(pytester, train="jinja:" + CHATML, extra=", checks=['prompt-prefix']")
    result = pytester.runpytest("--harness-data", str(tmp_path / "bad.jsonl"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*template-harness input error: bad.jsonl:1: conversations[[]1].from='gtp': unknown "
                                 "role tag*"])


# --- the records reach the PaddleNLP and XTuner renderers as the files store them ------------------------------


def _train_renderer(spec: str):
    from harness.api import load_model, make_pair

    try:
        return make_pair(load_model(model="qwen2.5"), spec, "hf:" + CHATML).train
    except InputError as exc:  # the optional engine is not installed
        pytest.skip(f"{spec}: {exc}")


@pytest.mark.real_tokenizer
def test_paddlenlp_records_round_trip_through_the_paddlenlp_renderer() -> None:
    """Each PaddleNLP record read as a conversation gives back the same src/tgt/context through ``paddlenlp:``'s
    own record form (so the system the template renders is the record's context.system)."""
    renderer = _train_renderer("paddlenlp:" + str(FIXTURES / "paddlenlp/qwen2.5_chatml_chat_template.json"))
    from harness.data.stream import iter_raw

    raws = [raw for _, raw in iter_raw(DATA / "paddlenlp.jsonl")]
    for raw, record in zip(raws, open_data(DATA / "paddlenlp.jsonl").records(), strict=True):
        want = {k: [raw[k]] if isinstance(raw[k], str) else raw[k] for k in ("src", "tgt")}
        want["context"] = raw.get("context", {})
        assert renderer.record(record.conversation)[0] == want, record.name


@pytest.mark.real_tokenizer
def test_xtuner_records_round_trip_through_the_xtuner_renderer() -> None:
    renderer = _train_renderer("xtuner:qwen_chat")
    from harness.data.stream import iter_raw

    raws = [raw for _, raw in iter_raw(DATA / "xtuner.jsonl")]
    for raw, record in zip(raws, open_data(DATA / "xtuner.jsonl").records(), strict=True):
        turns = renderer.dataset(record.conversation)[0]
        assert [{k: v for k, v in t.items() if v or k != "system"} for t in turns] == raw["conversation"], record.name
