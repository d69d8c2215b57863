"""Malformed input on every path the CLI reads: exit 2, exactly one ``harness: error:`` line naming the input,
no traceback, and the model dir byte-identical afterwards. The CLI runs in-process (tokenizers stay cached)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tree_hash

from harness.cli import main
from harness.zoo import zoo_model_dir

pytestmark = pytest.mark.real_tokenizer

QWEN = "{{ '<|im_start|>' }}{% for m in messages %}{{ m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" \
       "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
#: Llama-2-chat's published template: it writes ``bos_token + '[INST] '``, and Qwen2.5's tokenizer has no BOS.
LLAMA2 = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
          "message['content'].strip() + ' [/INST]' }}{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + "
          "message['content'].strip() + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ '  ' + "
          "message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
MODELFILE = 'FROM ./m.gguf\nTEMPLATE """{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n' \
            '{{ end }}<|im_start|>assistant\n"""\n'
LMDEPLOY = json.dumps({"model_name": "my-model", "system": "<|im_start|>system\n", "eosys": "<|im_end|>\n",
                       "user": "<|im_start|>user\n", "eoh": "<|im_end|>\n", "assistant": "<|im_start|>assistant\n",
                       "eoa": "<|im_end|>", "separator": "\n", "stop_words": ["<|im_end|>"]})
YAML = "model_name_or_path: Qwen/Qwen2.5-7B-Instruct\nstage: sft\ntemplate: qwen\ncutoff_len: 2048\n"

Q = ["--model", "qwen2.5"]
M = ["--model-dir", "{model}"]
OK_TRAIN = ["--train", "jinja:{tmp}/ok.jinja"]
OK_DEPLOY = ["--deploy", "hf:{tmp}/ok.jinja"]


def _case(argv: list[str], expect: str, files: dict[str, Any] | None = None, model: dict[str, Any] | None = None
          ) -> tuple[list[str], str, dict[str, Any], dict[str, Any] | None]:
    return argv, expect, {"ok.jinja": QWEN, **(files or {})}, model


def deploy(spec: str, expect: str, files: dict[str, Any] | None = None) -> tuple:
    return _case([*Q, *OK_TRAIN, "--deploy", spec], expect, files)


def train(spec: str, expect: str, files: dict[str, Any] | None = None) -> tuple:
    return _case([*Q, "--train", spec, *OK_DEPLOY], expect, files)


def model(edits: dict[str, Any], expect: str, argv: list[str] | None = None) -> tuple:
    return _case([*M, *(argv or ["--train", "jinja:.", "--deploy", "hf:."])], expect, model=edits)


CASES: dict[str, tuple] = {
    # --- command line (argparse and the CLI's own checks)
    "examples zero": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--examples", "0"], "examples"),
    "examples past the cap": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--examples", "1000000000000"], "1,000,000"),
    "examples not a number": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--examples", "10**12"], "examples"),
    "seed negative": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--seed", "-1"], "seed"),
    "seed too big": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--seed", str(2**63)], "seed"),
    "tools value": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--tools", "maybe"], "--tools"),
    "reasoning value": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--reasoning", "maybe"], "--reasoning"),
    "no --train": _case([*Q, *OK_DEPLOY], "--train"),
    "no --deploy": _case([*Q, *OK_TRAIN], "--deploy"),
    "too many --deploy": _case([*Q, *OK_TRAIN, *OK_DEPLOY * 65], "at most 64 deploy specs"),
    "model and model-dir": _case([*Q, "--model-dir", "{tmp}", *OK_TRAIN, *OK_DEPLOY], "not allowed with"),
    "format comma only": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--format", ","], "names no format"),
    "format empty": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--format", ""], "names no format"),
    "format unknown": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--format", "json,xml"], "'xml'"),
    "checks unknown": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--checks", "tools2"], "tools2"),
    "checks comma only": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--checks", ","], "unknown check"),
    "report dir is a file": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--report-dir", "{tmp}/ok.jinja"], "is a file"),
    "report dir under a file": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--report-dir", "{tmp}/ok.jinja/rep"],
                                     "cannot write there"),
    "report dir unwritable": _case([*Q, *OK_TRAIN, *OK_DEPLOY, "--report-dir", "/proc/self"], "cannot write there"),
    # --- spec grammar and options (one table validates them all)
    "spec without kind": train("train.jinja", "KIND:ARG"),
    "unknown kind": deploy("vllm:.", "unknown kind 'vllm'"),
    "empty argument": deploy("hf:", "empty kind or argument"),
    "empty kind": deploy(":x", "empty kind or argument"),
    "option not key=value": deploy("hf:.,oops", "not key=value"),
    "option twice": deploy("hf:.,timeout=1,timeout=2", "given twice"),
    "deploy kind as train": train("hf:.", "--deploy"),
    "train kind as deploy": deploy("jinja:.", "--train"),
    "timeout NaN": deploy("hf:.,timeout=NaN", "timeout=nan is not accepted"),
    "timeout inf": deploy("hf:.,timeout=inf", "timeout='inf' is not accepted"),
    "timeout 1e999": deploy("hf:.,timeout=1e999", "timeout=inf is not accepted"),
    "timeout true": train("jinja:.,timeout=true", "timeout=true is not accepted"),
    "timeout zero": deploy("hf:.,timeout=0", "positive finite"),
    "timeout negative": deploy("hf:.,timeout=-1", "positive finite"),
    "max_output zero": deploy("hf:.,max_output=0", "max_output=0"),
    "max_memory text": deploy("hf:.,max_memory=lots", "max_memory='lots'"),
    "stop as an object": deploy('hf:.,stop={"a":1}', "stop={'a': 1} is not accepted"),
    "stop empty": deploy("hf:.,stop=", "stop='' is not accepted"),
    "stop with an empty part": deploy("hf:.,stop=<|im_end|>|", "TEXT|TEXT"),
    "add_special_tokens maybe": deploy("hf:.,add_special_tokens=maybe", "true|false"),
    "enable_thinking maybe": deploy("hf:.,enable_thinking=maybe", "enable_thinking='maybe'"),
    "encode unknown": train("jinja:.,encode=bytes", "whole|segments"),
    "encode on the deploy side": deploy("hf:.,encode=segments", "training option"),
    "template variable with underscore": deploy("hf:.,_secret=1", "start with a letter"),
    "ollama think maybe": deploy("ollama:{tmp}/Modelfile,think=maybe", "auto|true|false|low|medium|high",
                                 {"Modelfile": MODELFILE}),
    "ollama eog value": deploy("ollama:{tmp}/Modelfile,eog=sometimes", "llama.cpp|off", {"Modelfile": MODELFILE}),
    "ollama add_bos number": deploy("ollama:{tmp}/Modelfile,add_bos=2", "add_bos=2", {"Modelfile": MODELFILE}),
    "ollama unknown option": deploy("ollama:{tmp}/Modelfile,thnk=true", "unknown option 'thnk'",
                                    {"Modelfile": MODELFILE}),
    "ollama timeout NaN": deploy("ollama:{tmp}/Modelfile,timeout=NaN", "timeout=nan", {"Modelfile": MODELFILE}),
    "tgi fuel zero": deploy("tgi:{tmp}/ok.jinja,fuel=0", "fuel=0"),
    "tgi fuel fraction": deploy("tgi:{tmp}/ok.jinja,fuel=1.5", "fuel=1.5"),
    "tgi unknown option": deploy("tgi:{tmp}/ok.jinja,trim=true", "unknown option 'trim'"),
    "lmdeploy takes session_len only": deploy("lmdeploy:{tmp}/t.json,x=1", "lmdeploy takes session_len=", {"t.json": LMDEPLOY}),
    "llamafactory unknown option": train("llamafactory:qwen,cutoff=5", "unknown option 'cutoff'"),
    "llamafactory cutoff_len negative": train("llamafactory:qwen,cutoff_len=-5", "cutoff_len=-5"),
    "llamafactory tokenize value": train("llamafactory:qwen,tokenize=fast", "harness|hf"),
    # --- LLaMA-Factory train.yaml (read before LLaMA-Factory is imported)
    "yaml template is a list": train("llamafactory:{tmp}/t.yaml", "template=['qwen', 'llama3']",
                                     {"t.yaml": YAML.replace("template: qwen", "template: [qwen, llama3]")}),
    "yaml cutoff_len text": train("llamafactory:{tmp}/t.yaml", "cutoff_len='long'",
                                  {"t.yaml": YAML.replace("2048", "long")}),
    "yaml mask_history text": train("llamafactory:{tmp}/t.yaml", "mask_history='yes please'",
                                    {"t.yaml": YAML + "mask_history: yes please\n"}),
    "yaml not a mapping": train("llamafactory:{tmp}/t.yaml", "not a mapping", {"t.yaml": "- template\n- qwen\n"}),
    "yaml syntax": train("llamafactory:{tmp}/t.yaml", "not valid YAML", {"t.yaml": "template: [qwen\n"}),
    "yaml missing": train("llamafactory:{tmp}/none.yaml", "no such file"),
    # --- template files
    "template file missing": train("jinja:{tmp}/missing.jinja", "missing.jinja"),
    "template dir without template": deploy("hf:{tmp}/empty", "has no chat template", {"empty/README": "x"}),
    "template not UTF-8": train("jinja:{tmp}/latin1.jinja", "UTF-8", {"latin1.jinja": "{{ 'caf\xe9' }}".encode("latin-1")}),
    "template syntax error": train("jinja:{tmp}/broken.jinja", "syntax error", {"broken.jinja": "{% for m in %}"}),
    "template empty": train("jinja:{tmp}/empty.jinja", "renders nothing", {"empty.jinja": ""}),
    "template only a comment": deploy("hf:{tmp}/c.jinja", "renders nothing", {"c.jinja": "{# nothing #}"}),
    "template rejects everything": train("jinja:{tmp}/r.jinja", "rejected all",
                                         {"r.jinja": "{{ raise_exception('no') }}"}),
    "template too big": train("jinja:{tmp}/big.jinja", "cap on template files", {"big.jinja": "x" * (1 << 20 | 1)}),
    "template uses a missing bos_token": deploy("hf:{tmp}/llama2.jinja", "defines no bos_token",
                                                {"llama2.jinja": LLAMA2}),
    "tgi template minijinja syntax": deploy("tgi:{tmp}/b.jinja", "minijinja syntax error", {"b.jinja": "{% for %}"}),
    # --- Ollama Modelfiles
    "modelfile missing": deploy("ollama:{tmp}/None.Modelfile", "no such file"),
    "modelfile without FROM": deploy("ollama:{tmp}/Modelfile", "no FROM line",
                                     {"Modelfile": MODELFILE.replace("FROM ./m.gguf\n", "")}),
    "modelfile unterminated": deploy("ollama:{tmp}/Modelfile", "unterminated",
                                     {"Modelfile": MODELFILE.rstrip().rstrip('"') + "\n"}),
    "modelfile without TEMPLATE": deploy("ollama:{tmp}/Modelfile", "no TEMPLATE", {"Modelfile": "FROM ./m.gguf\n"}),
    "modelfile Go syntax": deploy("ollama:{tmp}/Modelfile", "does not parse as a Go template",
                                  {"Modelfile": 'FROM x\nTEMPLATE """{{ range .Messages }}"""\n'}),
    "modelfile unknown command": deploy("ollama:{tmp}/Modelfile", "unknown command",
                                        {"Modelfile": "FROM x\nTEMPLATES x\n"}),
    # --- LMDeploy chat_template.json
    "lmdeploy invalid json": deploy("lmdeploy:{tmp}/t.json", "invalid JSON", {"t.json": '{"system": '}),
    "lmdeploy json list": deploy("lmdeploy:{tmp}/t.json", "not an object", {"t.json": "[1, 2]"}),
    "lmdeploy unknown field": deploy("lmdeploy:{tmp}/t.json", "unknown field", {"t.json": '{"sistem": "x"}'}),
    "lmdeploy deep json": deploy("lmdeploy:{tmp}/t.json", "nests deeper", {"t.json": "[" * 100_000}),
    # --- model dirs
    "model dir missing": _case(["--model-dir", "{tmp}/nope", *OK_TRAIN, *OK_DEPLOY], "does not exist"),
    "model dir is a file": _case(["--model-dir", "{tmp}/ok.jinja", *OK_TRAIN, *OK_DEPLOY], "is not a directory"),
    "model dir empty": _case(["--model-dir", "{tmp}/empty", *OK_TRAIN, *OK_DEPLOY], "no tokenizer.json",
                             {"empty/README": "x"}),
    "unknown zoo model": _case(["--model", "qwen9", *OK_TRAIN, *OK_DEPLOY], "qwen9"),
    "only tokenizer_config": model({"tokenizer.json": None}, "no tokenizer.json"),
    "tokenizer.json corrupt": model({"tokenizer.json": '{"version": "1.0", "model": 3}'}, "tokenizer.json cannot be"),
    "tokenizer_config invalid json": model({"tokenizer_config.json": '{"eos_token": '}, "invalid JSON"),
    "tokenizer_config a list": model({"tokenizer_config.json": "[]"}, "not an object"),
    "tokenizer_config deep json": model({"tokenizer_config.json": "[" * 100_000}, "nested deeper"),
    "chat_template is a number": model({"tokenizer_config.json": {"chat_template": 42}}, "chat_template=42"),
    "chat_template list without names": model({"tokenizer_config.json": {"chat_template": [{"template": "x"}]}},
                                              "is not a chat template"),
    "no chat template": model({"tokenizer_config.json": {"chat_template": None}}, "no chat template"),
    "generation eos text": model({"generation_config.json": {"eos_token_id": "abc"}}, "eos_token_id='abc'"),
    "generation eos mixed list": model({"generation_config.json": {"eos_token_id": [151645, "x"]}}, "eos_token_id"),
    "generation eos boolean": model({"generation_config.json": {"eos_token_id": True}}, "eos_token_id=True"),
    "generation config a list": model({"generation_config.json": "[151645]"}, "not an object"),
    "chat_template.json a list": model({"chat_template.json": "[]"}, "not an object"),
    "chat_template.json without key": model({"chat_template.json": {"template": "x"}}, 'no "chat_template" key'),
    "chat_template.jinja not UTF-8": model({"chat_template.jinja": b"{{ '\xff\xfe' }}"}, "not UTF-8"),
    "chat_template.jinja empty": model({"chat_template.jinja": ""}, "renders nothing"),
    "tgi reads no chat_template.jinja": model({"tokenizer_config.json": {"chat_template": None},
                                               "chat_template.jinja": QWEN}, "chat_template.jinja alone",
                                              ["--train", "jinja:.", "--deploy", "tgi:."]),
}


def _model_dir(root: Path, edits: dict[str, Any]) -> Path:
    """A copy of the zoo's Qwen2.5 dir with ``edits``: None deletes, a dict updates the JSON, else the content."""
    d = root / "model"
    shutil.copytree(zoo_model_dir("qwen2.5"), d)
    for name, content in edits.items():
        path = d / name
        if content is None:
            path.unlink()
        elif isinstance(content, dict):
            data = json.loads(path.read_text()) if path.exists() else {}
            data.update(content)
            path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return d


def test_corpus_is_big_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys, monkeypatch):
    argv, expect, files, edits = CASES[case]
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    model_dir = _model_dir(tmp_path, edits) if edits is not None else zoo_model_dir("qwen2.5")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{model}", str(model_dir)) for a in argv]
    if "--report-dir" not in args:
        args += ["--report-dir", str(tmp_path / "rep")]
    if "--examples" not in args:
        args += ["--examples", "5"]
    monkeypatch.chdir(tmp_path)
    before = tree_hash(model_dir)
    code = main(["check", *args] if case != "unknown subcommand" else args)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    assert expect in lines[0], lines[0]
    assert tree_hash(model_dir) == before  # nothing written to the model dir
    report = tmp_path / "rep" / "report.json"  # none, or one that says this run failed
    assert not report.exists() or json.loads(report.read_text())["harness"]["exit_status"] == 2


def test_a_run_that_stops_early_leaves_no_old_report(tmp_path, capsys):
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.json").write_text('{"old": true}')
    (rep / "report.md").write_text("# old")
    assert main(["check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:.,timeout=NaN",
                 "--report-dir", str(rep)]) == 2
    assert not (rep / "report.json").exists() and not (rep / "report.md").exists()


def test_report_records_inputs_and_exit_status_and_is_written_atomically(tmp_path, capsys):
    template = tmp_path / "t.jinja"
    template.write_text(QWEN)
    digests = []
    for name in ("a", "b"):
        assert main(["check", "--model", "qwen2.5", "--train", f"jinja:{template}", "--deploy", "hf:.",
                     "--examples", "5", "--report-dir", str(tmp_path / name), "--quiet"]) in (0, 1)
        report = json.loads((tmp_path / name / "report.json").read_text())
        h = report["harness"]
        assert h["exit_status"] in (0, 1)
        assert h["inputs"]["files"][str(template)] == hashlib.sha256(template.read_bytes()).hexdigest()
        assert "model:tokenizer.json" in h["inputs"]["files"]
        digests.append(h["inputs"]["sha256"])
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["report.json", "report.md"]  # no temp files
    assert digests[0] == digests[1]
    template.write_text(QWEN + " ")
    main(["check", "--model", "qwen2.5", "--train", f"jinja:{template}", "--deploy", "hf:.", "--examples", "5",
          "--report-dir", str(tmp_path / "c"), "--quiet"])
    assert json.loads((tmp_path / "c" / "report.json").read_text())["harness"]["inputs"]["sha256"] != digests[0]
