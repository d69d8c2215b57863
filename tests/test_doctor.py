"""``harness doctor``: each lint fires on its fixture dir and goes quiet one edit away; zoo models give no error;
bad inputs exit 2 with one line; the model dir is never written; JSON is deterministic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.doctor import LINTS
from harness.zoo import zoo_model_dir, zoo_names
from tests.conftest import FIXTURES, tree_hash

pytestmark = pytest.mark.real_tokenizer

DOCTOR = FIXTURES / "doctor"
#: lint id → (zoo model the fixture dir is built on, severity it reports there)
CASES = {
    "eos-generation-config": ("llama3", "error"),
    "template-conflict": ("qwen2.5", "warning"),
    "template-unknown-token": ("qwen2.5", "error"),
    "lora-adapter-unmerged": ("qwen2.5", "error"),
    "template-date": ("qwen2.5", "warning"),
    "double-bos": ("llama3", "warning"),
    "stop-word-not-single-token": ("qwen2.5", "warning"),
    "deploy-stop-missing": ("glm4", "error"),
}
DEPLOY_FILES = {"Modelfile": "ollama", "lmdeploy.json": "lmdeploy"}


def assemble(tmp_path: Path, lint: str) -> tuple[Path, list[str]]:
    """A model dir: the zoo model's installed files plus the lint's committed overrides; deploy specs for the
    fixture's deploy files (kept outside the dir)."""
    base = CASES[lint][0] if lint in CASES else lint
    d = tmp_path / f"model-{lint}"
    d.mkdir()
    for f in zoo_model_dir(base).iterdir():
        if f.name != "harness-zoo.json":
            shutil.copy(f, d / f.name)
    deploys = []
    for f in sorted((DOCTOR / lint).iterdir()) if (DOCTOR / lint).is_dir() else ():
        if f.name in DEPLOY_FILES:
            deploys.append(f"{DEPLOY_FILES[f.name]}:{f}")
        else:
            shutil.copy(f, d / f.name)
    return d, deploys


def doctor(capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["doctor", *args, "--format", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def ids(report: dict) -> dict[str, str]:
    return {f["id"]: f["severity"] for f in report["findings"]}


def test_lint_table_is_complete():
    assert [lint.id for lint in LINTS] == sorted(CASES, key=[lint.id for lint in LINTS].index)
    assert set(CASES) == {lint.id for lint in LINTS}
    for lint in LINTS:
        assert lint.run.__doc__ and "Rule" in lint.run.__doc__, lint.id


def test_clean_dir_has_no_findings_and_is_unchanged(tmp_path, capsys):
    d, _ = assemble(tmp_path, "qwen2.5")
    before = tree_hash(d)
    code, report, err = doctor(capsys, str(d), "--deploy", f"lmdeploy:{FIXTURES / 'lmdeploy/qwen2.5.chat_template.json'}")
    assert code == 0, err
    assert report["findings"] == [] and report["exit_status"] == 0
    assert tree_hash(d) == before


# (lint, the one edit that makes the fixture clean for that lint)
def _fix_eos(d: Path, deploys: list[str]) -> list[str]:
    (d / "generation_config.json").write_text('{"eos_token_id": [128001, 128009]}')
    return deploys


def _fix_conflict(d: Path, deploys: list[str]) -> list[str]:
    config = json.loads((d / "tokenizer_config.json").read_text())
    (d / "chat_template.jinja").write_text(config["chat_template"])
    return deploys


def _fix_unknown(d: Path, deploys: list[str]) -> list[str]:
    path = d / "chat_template.jinja"
    path.write_text(path.read_text().replace("<|eot_id|>", "<|im_end|>"))
    return deploys


def _fix_adapter(d: Path, deploys: list[str]) -> list[str]:
    (d / "adapter_config.json").unlink()
    return deploys


def _fix_date(d: Path, deploys: list[str]) -> list[str]:
    path = d / "chat_template.jinja"
    path.write_text(path.read_text().replace("strftime_now('%d %b %Y')", "'15 Jan 2026'"))
    return deploys


def _fix_bos(d: Path, deploys: list[str]) -> list[str]:
    path = d / "chat_template.jinja"
    path.write_text(path.read_text().replace("{{- bos_token }}\n", ""))
    return deploys


def _fix_lmdeploy(tmp_path: Path):
    def fix(d: Path, deploys: list[str]) -> list[str]:
        data = json.loads((DOCTOR / "stop-word-not-single-token/lmdeploy.json").read_text())
        data["stop_words"] = ["<|im_end|>"]
        (tmp_path / "fixed.json").write_text(json.dumps(data))
        return [f"lmdeploy:{tmp_path / 'fixed.json'}"]
    return fix


def _fix_modelfile(tmp_path: Path):
    def fix(d: Path, deploys: list[str]) -> list[str]:
        text = (DOCTOR / "deploy-stop-missing/Modelfile").read_text()
        (tmp_path / "Modelfile").write_text(text + 'PARAMETER stop "<|user|>"\n')
        return [f"ollama:{tmp_path / 'Modelfile'}"]
    return fix


FIXES = {"eos-generation-config": lambda t: _fix_eos, "template-conflict": lambda t: _fix_conflict,
         "template-unknown-token": lambda t: _fix_unknown, "lora-adapter-unmerged": lambda t: _fix_adapter,
         "template-date": lambda t: _fix_date, "double-bos": lambda t: _fix_bos,
         "stop-word-not-single-token": _fix_lmdeploy, "deploy-stop-missing": _fix_modelfile}


@pytest.mark.parametrize("lint", list(CASES))
def test_lint_fires_on_its_fixture_and_not_one_edit_away(lint, tmp_path, capsys):
    d, deploys = assemble(tmp_path, lint)
    before = tree_hash(d)
    code, report, err = doctor(capsys, str(d), *(a for s in deploys for a in ("--deploy", s)))
    severity = CASES[lint][1]
    assert ids(report).get(lint) == severity, (report["findings"], err)
    assert code == (1 if "error" in ids(report).values() else 0)
    finding = next(f for f in report["findings"] if f["id"] == lint)
    assert finding["fix"] and finding["explanation"] and finding["file"] and finding["evidence"]
    assert tree_hash(d) == before  # doctor never writes to the dir
    deploys = FIXES[lint](tmp_path)(d, deploys)
    code, report, err = doctor(capsys, str(d), *(a for s in deploys for a in ("--deploy", s)))
    assert lint not in ids(report), report["findings"]


def test_eos_without_generation_config_is_a_warning(tmp_path, capsys):
    d, _ = assemble(tmp_path, "eos-generation-config")
    (d / "generation_config.json").unlink()
    code, report, _ = doctor(capsys, str(d))
    assert ids(report)["eos-generation-config"] == "warning" and code == 0


def test_adapter_beside_base_weights_is_a_warning(tmp_path, capsys):
    d, _ = assemble(tmp_path, "lora-adapter-unmerged")
    (d / "model.safetensors").write_bytes(b"")
    code, report, _ = doctor(capsys, str(d))
    assert ids(report)["lora-adapter-unmerged"] == "warning" and code == 0


@pytest.mark.parametrize("model", zoo_names())
def test_zoo_models_have_no_error(model, capsys):
    code, report, err = doctor(capsys, "--model", model)
    assert code == 0, (report.get("findings"), err)
    assert "error" not in ids(report).values()
    # the warnings real models get, each explained in README's "harness doctor" section
    expected = {"llama3": {"double-bos": "warning", "template-date": "warning"},
                "mistral-v3": {"double-bos": "warning"}, "glm4": {"double-bos": "warning"}}
    assert ids(report) == expected.get(model, {})


@pytest.mark.parametrize("deploy, expected", [
    ("ollama/qwen2.5.Modelfile", {}),
    ("ollama/chatml-generic.Modelfile", {}),
    ("ollama/qwen2.5-missing-stop.Modelfile", {"deploy-stop-missing": "warning"}),  # check: stop-heuristic warning
    ("lmdeploy/qwen2.5.chat_template.json", {}),
    ("lmdeploy/qwen2.5-mangled.chat_template.json", {}),
])
def test_existing_deploy_fixtures_agree_with_check(deploy, expected, capsys):
    kind = "ollama" if deploy.startswith("ollama") else "lmdeploy"
    code, report, err = doctor(capsys, "--model", "qwen2.5", "--deploy", f"{kind}:{FIXTURES / deploy}")
    assert ids(report) == expected and code == 0, err


def test_json_is_deterministic_and_output_file(tmp_path, capsys):
    d, deploys = assemble(tmp_path, "deploy-stop-missing")
    args = [str(d), "--deploy", deploys[0], "--format", "json"]
    outs = []
    for name in ("a.json", "b.json"):
        assert main(["doctor", *args, "--output", str(tmp_path / name)]) == 1
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert list(json.loads(outs[0])) == sorted(json.loads(outs[0]))
    assert main(["doctor", str(d), "--deploy", deploys[0]]) == 1  # the table
    out = capsys.readouterr().out
    assert "deploy-stop-missing" in out and "error" in out


@pytest.mark.parametrize("args, needle", [
    (["/nonexistent/model"], "does not exist"),
    ([], "exactly one of DIR or --model"),
    (["--model", "nope"], "unknown zoo model"),
    (["--model", "qwen2.5", "--deploy", f"ollama:{FIXTURES / 'ollama/unterminated.Modelfile'}"], "unterminated"),
    (["--model", "qwen2.5", "--deploy", f"lmdeploy:{FIXTURES / 'lmdeploy/broken-syntax.chat_template.json'}"],
     "invalid JSON"),
    (["--model", "qwen2.5", "--train", f"jinja:{FIXTURES / 'bad/broken.jinja'}"], "broken.jinja"),
    (["--model", "qwen2.5", "--format", "xml"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(args, needle, capsys):
    assert main(["doctor", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: error:") and needle in err, err


def test_bad_dir_files_exit_2(tmp_path, capsys):
    d = tmp_path / "empty"
    d.mkdir()
    assert main(["doctor", str(d)]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    d2, _ = assemble(tmp_path, "lora-adapter-unmerged")
    (d2 / "adapter_config.json").write_text("{not json")
    assert main(["doctor", str(d2)]) == 2
    err = capsys.readouterr().err
    assert "adapter_config.json" in err and "invalid JSON" in err and err.count("\n") == 1
    (d2 / "adapter_config.json").unlink()
    (d2 / "generation_config.json").write_text('{"eos_token_id": "x"}')
    assert main(["doctor", str(d2)]) == 2
    assert "eos_token_id" in capsys.readouterr().err
    assert main(["doctor", str(d2), "--output", str(d2 / "out.json")]) == 2
    assert "inside the model dir" in capsys.readouterr().err and not (d2 / "out.json").exists()
