"""The ``harness`` CLI: exit codes, the Done-when scenarios, bad input, byte-identical reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.zoo import zoo_model_dir
from tests.conftest import fixture, tree_hash

pytestmark = pytest.mark.real_tokenizer


def run(*args: str, tmp_path: Path) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def qwen_template() -> str:
    return json.loads((zoo_model_dir("qwen2.5") / "tokenizer_config.json").read_text())["chat_template"]


def test_one_newline_change_exits_1_and_names_token_and_message(tmp_path, qwen_template):
    needle = "message.content + '<|im_end|>' + '\\n'"
    assert needle in qwen_template
    (tmp_path / "A.jinja").write_text(qwen_template.replace(needle, "message.content + '<|im_end|>' + '\\n\\n'", 1))
    code, out, err = run("check", "--model", "qwen2.5", "--train", "jinja:A.jinja", "--deploy", "hf:.",
                         "--examples", "200", "--report-dir", "rep", tmp_path=tmp_path)
    assert code == 1, err
    assert "At token " in out and "messages[" in out and "␤" in out
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    prefix = next(c for c in report["targets"][0]["checks"] if c["name"] == "prompt-prefix")
    assert prefix["verdict"] == "fail"
    assert prefix["first_divergence"]["index"] >= 0
    assert "messages[" in json.dumps(prefix["first_divergence"]["message_path"])


def test_identical_templates_exit_0_over_2000(tmp_path, qwen_template):
    (tmp_path / "A.jinja").write_text(qwen_template)
    code, out, err = run("check", "--model", "qwen2.5", "--train", "jinja:A.jinja", "--deploy", "hf:.",
                         "--examples", "2000", "--report-dir", "rep", "--quiet", tmp_path=tmp_path)
    assert code == 0, out + err
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["targets"][0]["verdict"] == "consistent"
    assert report["harness"]["examples"] == 2000
    assert (tmp_path / "rep" / "report.md").read_text().startswith("# Template consistency report")


def test_same_seed_gives_byte_identical_reports(tmp_path):
    for name in ("a", "b"):
        assert main(["check", "--model", "qwen2.5", "--train", "jinja:" + fixture("planted/prompt_newline.jinja"),
                     "--deploy", "hf:" + fixture("templates/chatml.jinja"), "--examples", "120", "--seed", "7",
                     "--report-dir", str(tmp_path / name), "--quiet"]) == 1
    for f in ("report.json", "report.md"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def _broken_dir(tmp_path: Path, what: str) -> Path:
    d = tmp_path / "model"
    shutil.copytree(zoo_model_dir("qwen2.5"), d)
    if what == "no-template":
        config = json.loads((d / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (d / "tokenizer_config.json").write_text(json.dumps(config))
        (d / "chat_template.jinja").unlink(missing_ok=True)
    elif what == "bad-json":
        (d / "tokenizer_config.json").write_text('{"eos_token": "<|im_end|>", ')
    return d


BAD = {
    "missing model dir": (["--model-dir", "{tmp}/nope", "--train", "jinja:.", "--deploy", "hf:."], "nope"),
    "unknown zoo model": (["--model", "qwen9", "--train", "jinja:.", "--deploy", "hf:."], "qwen9"),
    "no chat template": (["--model-dir", "{model:no-template}", "--train", "jinja:.", "--deploy", "hf:."],
                         "no chat template"),
    "malformed tokenizer json": (["--model-dir", "{model:bad-json}", "--train", "jinja:.", "--deploy", "hf:."],
                                 "tokenizer_config.json"),
    "broken jinja": (["--model", "qwen2.5", "--train", "jinja:" + fixture("bad/broken.jinja"), "--deploy", "hf:."],
                     "syntax error"),
    "template that raises": (["--model", "qwen2.5", "--train", "jinja:" + fixture("bad/raises.jinja"),
                              "--deploy", "hf:."], "rejected all"),
    "template that loops": (["--model", "qwen2.5", "--train", "jinja:" + fixture("bad/loop.jinja") + ",timeout=0.5",
                             "--deploy", "hf:."], "time"),
    "template reads internals": (["--model", "qwen2.5", "--train", "jinja:.",
                                  "--deploy", "hf:" + fixture("bad/reads_class.jinja")], "unsafe"),
    "missing template file": (["--model", "qwen2.5", "--train", "jinja:{tmp}/missing.jinja", "--deploy", "hf:."],
                              "missing.jinja"),
    "unknown spec kind": (["--model", "qwen2.5", "--train", "jinja:.", "--deploy", "vllm:."], "unknown kind"),
    "spec without kind": (["--model", "qwen2.5", "--train", "train.jinja", "--deploy", "hf:."], "KIND:ARG"),
    "deploy kind as train": (["--model", "qwen2.5", "--train", "hf:.", "--deploy", "hf:."], "--deploy"),
    "bad seed": (["--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:.", "--seed", "minus-one"], "seed"),
    "bad examples": (["--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:.", "--examples", "0"], "examples"),
    "unknown check": (["--model", "qwen2.5", "--train", "jinja:.", "--deploy", "hf:.", "--checks", "tools2"],
                      "tools2"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_exits_2_with_one_clear_message(case, tmp_path):
    args, expected = BAD[case]
    model_dirs = {}
    argv = []
    for a in args:
        if a.startswith("{model:"):
            kind = a[len("{model:"):-1]
            model_dirs[kind] = _broken_dir(tmp_path, kind)
            a = str(model_dirs[kind])
        argv.append(a.replace("{tmp}", str(tmp_path)))
    before = {k: tree_hash(v) for k, v in model_dirs.items()}
    code, out, err = run("check", *argv, "--examples", "30", "--report-dir", str(tmp_path / "rep"),
                         tmp_path=tmp_path) if "--examples" not in argv else \
        run("check", *argv, "--report-dir", str(tmp_path / "rep"), tmp_path=tmp_path)
    assert code == 2, out + err
    assert "Traceback" not in err and "Traceback" not in out
    assert expected in err, err
    assert err.count("error:") == 1, err
    assert {k: tree_hash(v) for k, v in model_dirs.items()} == before  # the model dir is never written
