"""The CI examples work as shipped: the GitHub workflow's triggers and harness step, the pre-commit hook
definition and the example config — run for real (the hook's command, the `pre-commit` tool, the workflow's
`run:` script) on a consistent template pair and after a planted template change."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.report import FORMATS
from harness.zoo import zoo_model_dir
from tests.conftest import ROOT

pytestmark = pytest.mark.real_tokenizer

EXAMPLES = ROOT / "examples"
WORKFLOW = EXAMPLES / "github" / "template-harness.yml"
HOOKS = EXAMPLES / "pre-commit" / ".pre-commit-hooks.yaml"
CONFIG = EXAMPLES / "pre-commit" / ".pre-commit-config.yaml"

TRIGGER = ["chat_template.jinja", "train/chat_template.jinja", "serve/qwen.jinja", "model/tokenizer_config.json",
           "tokenizer_config.json", "serve/chat_template.json", "model/tokenizer.json",
           "model/generation_config.json", "Modelfile", "serve/Modelfile", "serve/qwen2.5.Modelfile",
           "configs/train/sft.yaml", "configs/train/qwen/lora.yaml", ".template-harness/baseline.json"]
IGNORE = ["README.md", "model/model.safetensors", "model/config.json", "docs/Modelfile.md", "src/app.py",
          "other/train.yaml", "serve/chat_template.json.bak", "notes/jinja.txt", "Modelfile.txt",
          "configs/train/README.md"]

NEEDLE = "{{- '\\n</tool_response>' }}"
PLANTED = "{{- '\\n</tool_response>\\n' }}"


def _glob(pattern: str) -> re.Pattern[str]:
    """A GitHub Actions `paths:` glob as a regex: `**/` any directories (or none), `**` anything, `*` and `?`
    within one path segment."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    return data


def _triggers(data: dict) -> dict:
    return data.get("on", data.get(True))  # YAML 1.1 reads a bare `on:` key as True


def _hook() -> dict:
    hooks = yaml.safe_load(HOOKS.read_text())
    assert isinstance(hooks, list) and len(hooks) == 1
    return hooks[0]


def _local_hook() -> dict:
    config = yaml.safe_load(CONFIG.read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    (hook,) = repo["hooks"]
    return hook


def test_workflow_paths_match_templates_and_not_other_files():
    triggers = _triggers(_workflow())
    assert set(triggers) == {"push", "pull_request"}
    assert triggers["push"]["paths"] == triggers["pull_request"]["paths"]
    globs = [_glob(p) for p in triggers["push"]["paths"]]
    for path in TRIGGER:
        assert any(g.match(path) for g in globs), path
    for path in IGNORE:
        assert not any(g.match(path) for g in globs), path


def test_hook_files_regex_matches_the_same_files():
    hook = _hook()
    assert hook["id"] == "template-harness" and hook["pass_filenames"] is False
    assert hook["language"] in ("system", "python")
    files = re.compile(hook["files"])
    for path in TRIGGER:
        assert files.search(path), path
    for path in IGNORE:
        assert not files.search(path), path
    local = _local_hook()
    for key in ("id", "entry", "language", "pass_filenames", "files"):
        assert local[key] == hook[key], key  # the example config is the hook definition, plus args


def test_workflow_steps():
    job = _workflow()["jobs"]["template-harness"]
    steps = job["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert any("pip install" in s.get("run", "") and "template-harness" in s["run"] for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert "report.html" in upload["with"]["path"] and "report.junit.xml" in upload["with"]["path"]
    publish = next(s for s in steps if "junit" in s.get("uses", ""))
    assert publish["if"] == "always()" and publish["with"]["report_paths"].endswith("report.junit.xml")
    run = _harness_step(job)["run"]
    assert "--format json,md,html,junit" in run and "--baseline" in run


def _harness_step(job: dict) -> dict:
    (step,) = [s for s in job["steps"] if "harness check" in s.get("run", "")]
    return step


@pytest.fixture(scope="module")
def template() -> str:
    text = json.loads((zoo_model_dir("qwen2.5") / "tokenizer_config.json").read_text())["chat_template"]
    assert NEEDLE in text
    return text


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A PATH whose `harness` is this checkout's code (the console script may be another install's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "harness"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness.cli "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _project(root: Path, template: str, env: dict[str, str], *, planted: bool = False) -> Path:
    """A git repo with a training template and a serving template (the planted change: a newline after every
    tool result on the serving side), staged, with the example pre-commit config."""
    root.mkdir()
    (root / "train.jinja").write_text(template)
    (root / "serve.jinja").write_text(template.replace(NEEDLE, PLANTED) if planted else template)
    shutil.copy(CONFIG, root / ".pre-commit-config.yaml")
    (root / ".gitignore").write_text(".template-harness/reports/\n")
    subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, env=env, check=True)
    return root


def _hook_argv() -> list[str]:
    """The hook's command (entry + the example config's args) as `harness.cli.main`'s argv: `harness` is the
    console script pyproject.toml maps to it."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    program, *argv = _hook()["entry"].split()
    assert scripts[program] == "harness.cli:main"
    return [*argv, *_local_hook()["args"]]


def test_hook_command_exits_0_then_1(tmp_path, template, env, monkeypatch, capsys):
    """In-process (a subprocess per run costs ~10 s of imports here; pre-commit below runs it as a process)."""
    root = _project(tmp_path / "repo", template, env)
    monkeypatch.chdir(root)
    assert main(_hook_argv()) == 0, capsys.readouterr()
    (root / "serve.jinja").write_text(template.replace(NEEDLE, PLANTED))
    assert main(_hook_argv()) == 1
    report = json.loads((root / ".template-harness" / "reports" / "report.json").read_text())
    prefix = next(c for c in report["targets"][0]["checks"] if c["name"] == "prompt-prefix")
    assert [k["cause"] for k in prefix["classes"] if k["severity"] == "error"] == ["tools-rendered"]


@pytest.mark.parametrize("planted", [False, True], ids=["consistent", "planted"])
def test_pre_commit_runs_the_example_config(planted, tmp_path, template, env):
    root = _project(tmp_path / "repo", template, env, planted=planted)
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == (1 if planted else 0), proc.stdout + proc.stderr
    assert re.search(r"template-harness .*\.+(Passed|Failed)", proc.stdout), proc.stdout
    assert ("Failed" if planted else "Passed") in proc.stdout


def test_pre_commit_runs_the_hook_definition_from_a_hook_repo(tmp_path, template, env):
    """`.pre-commit-hooks.yaml` itself, fetched by pre-commit from a (local) hook repository: its entry runs
    with the config's args and its exit status decides the hook (the sweep itself is proven above with the
    local config, whose hook fields equal this file's). Cheap args keep it fast: `--help` passes, an invalid
    `--examples 0` fails with the harness's own message."""
    hooks_repo = tmp_path / "hooks"
    hooks_repo.mkdir()
    shutil.copy(HOOKS, hooks_repo / ".pre-commit-hooks.yaml")
    subprocess.run(["git", "init", "-q"], cwd=hooks_repo, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=hooks_repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "hooks"], cwd=hooks_repo, env=env, check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=hooks_repo, env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    root = _project(tmp_path / "repo", template, env)
    (root / "unrelated.md").write_text("docs only\n")
    for args, code, shown in ((["--help"], 0, "Passed"), (["--examples", "0"], 1, "examples='0'")):
        config = {"repos": [{"repo": str(hooks_repo), "rev": rev, "hooks": [{"id": "template-harness", "args": args}]}]}
        (root / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
        subprocess.run(["git", "add", "-A"], cwd=root, env=env, check=True)
        proc = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--all-files"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == code and shown in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--files", "unrelated.md"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)  # files: no match, no run
    assert proc.returncode == 0 and "no files to check" in proc.stdout.lower(), proc.stdout + proc.stderr


def test_workflow_harness_step_runs(tmp_path, template, env):
    """The workflow's own `run:` script, with its job env pointed at a fixture project (train/deploy specs and
    examples substituted; model, baseline path and report dir as shipped): a baseline made from the consistent
    pair, then the planted change → exit 1 naming the new class. A format this checkout lacks (html) is dropped
    from the script."""
    job = _workflow()["jobs"]["template-harness"]
    script = _harness_step(job)["run"]
    if "html" not in FORMATS:
        script = script.replace("json,md,html,junit", "json,md,junit")
    root = _project(tmp_path / "repo", template, env)
    (root / ".template-harness").mkdir()
    with pytest.MonkeyPatch.context() as mp:  # the baseline: this pair while consistent (in-process: fast)
        mp.chdir(root)
        assert main(["check", "--model", "qwen2.5", "--train", "jinja:train.jinja", "--deploy", "hf:serve.jinja",
                     "--examples", "100", "--seed", "0", "--report-dir", "base", "--format", "json",
                     "--quiet"]) == 0
    shutil.move(root / "base" / "report.json", root / ".template-harness" / "baseline.json")
    (root / "serve.jinja").write_text(template.replace(NEEDLE, PLANTED))
    job_env = {**env, **{k: str(v) for k, v in job["env"].items()}, "HARNESS_TRAIN": "jinja:train.jinja",
               "HARNESS_DEPLOY": "--deploy hf:serve.jinja", "HARNESS_EXAMPLES": "100"}
    assert job["env"]["HARNESS_MODEL"] == "--model qwen2.5"
    assert job["env"]["HARNESS_BASELINE"] == ".template-harness/baseline.json"
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=root, env=job_env, capture_output=True, text=True,
                          timeout=300)  # GitHub runs `run:` with bash -e
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "baseline: 2 new, 0 fixed" in proc.stdout and "new: prompt-prefix: error tools-rendered" in proc.stdout
    reports = root / job["env"]["HARNESS_REPORTS"]
    assert json.loads((reports / "report.json").read_text())["baseline"]["path"] == ".template-harness/baseline.json"
    assert "tools-rendered" in (reports / "report.junit.xml").read_text()
    assert (reports / "report.md").is_file()
