"""--jobs, --shard + harness merge, harness generate: the same conversations, the same reports, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import ROOT, fixture

pytestmark = pytest.mark.real_tokenizer

DIFFER = ["--train", "jinja:" + fixture("planted/prompt_newline.jinja"), "--deploy", "hf:" + fixture("templates/chatml.jinja")]
SAME = ["--train", "jinja:.", "--deploy", "hf:."]
FILES = ("report.json", "report.md", "report.junit.xml", "report.html")


def check(tmp: Path, name: str, *extra: str) -> int:
    return main(["check", "--model", "qwen2.5", "--quiet", "--report-dir", str(tmp / name),
                 "--format", "json,md,junit,html", *extra])


@pytest.mark.parametrize("pair", [DIFFER, SAME], ids=["differing", "identical"])
def test_jobs_2_reports_equal_jobs_1_byte_for_byte(tmp_path, pair):
    args = [*pair, "--examples", "500", "--seed", "3"]
    assert check(tmp_path, "one", *args, "--jobs", "1") == check(tmp_path, "two", *args, "--jobs", "2")
    for name in FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_merge_runner_planted_bug_caught(tmp_path):
    """A merge that kept the last slice's first failure (not the earliest) would change the report."""
    from harness.api import load_model, make_pair
    from harness.generate import generate
    from harness.runner import finish, merge_sweeps, sweep

    pair = make_pair(load_model(model="qwen2.5"), DIFFER[1], DIFFER[3])
    convs = list(generate(120, seed=3, tools="any"))
    parts = [sweep(pair, convs[:60]), sweep(pair, convs[60:])]
    whole = finish(pair, sweep(pair, convs))
    assert finish(pair, merge_sweeps(parts)) == whole
    assert finish(pair, merge_sweeps(parts[::-1])) != whole  # order matters: the check can fail


def _shards(tmp: Path, args: list[str], n: int) -> list[str]:
    paths = []
    for i in range(1, n + 1):
        assert check(tmp, f"s{i}", *args, "--shard", f"{i}/{n}") in (0, 1)
        paths.append(str(tmp / f"s{i}" / "report.json"))
    return paths


def test_three_shards_merged_equal_one_run(tmp_path):
    args = [*DIFFER, "--examples", "240", "--seed", "3", "--jobs", "1"]
    code = check(tmp_path, "one", *args)
    paths = _shards(tmp_path, args, 3)
    assert main(["merge", *paths[::-1], "--report-dir", str(tmp_path / "m"), "--format", "json,md,junit,html"]) == code
    for name in FILES:
        assert (tmp_path / "m" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_merge_refuses_mixed_overlapping_or_missing_shards(tmp_path, capsys):
    args = [*DIFFER, "--examples", "60", "--checks", "prompt-prefix", "--jobs", "1"]
    paths = _shards(tmp_path, [*args, "--seed", "1"], 2)
    assert check(tmp_path, "other", *args, "--seed", "2", "--shard", "2/2") == 1
    capsys.readouterr()
    cases = {"different runs (seed differs": [paths[0], str(tmp_path / "other" / "report.json")],
             "are both shard 1/2": [paths[0], paths[0]],
             "shard 2/2 is missing": [paths[0]],
             "is not the report.json of a `harness check --shard": [paths[0], str(tmp_path / "one.json")]}
    (tmp_path / "one.json").write_text("{}")
    for needle, given in cases.items():
        assert main(["merge", *given, "--report-dir", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_shard_slices_data_records_like_generated(tmp_path):
    data = tmp_path / "convs.jsonl"
    assert main(["generate", "--examples", "90", "--seed", "4", "--output", str(data)]) == 0
    args = [*DIFFER, "--data", str(data), "--data-format", "openai", "--examples", "30", "--jobs", "1"]
    check(tmp_path, "one", *args)
    paths = _shards(tmp_path, args, 2)
    assert main(["merge", *paths, "--report-dir", str(tmp_path / "m")]) in (0, 1)
    assert (tmp_path / "m" / "report.json").read_bytes() == (tmp_path / "one" / "report.json").read_bytes()
    starts = [json.loads(Path(p).read_text())["shard"]["start"] for p in paths]
    assert starts == [0, 60]  # 90 records + 30 generated, cut in two


def test_generate_writes_what_check_sweeps(tmp_path):
    from harness.data import open_data
    from harness.generate import generate

    out = tmp_path / "convs.jsonl"
    for _ in range(2):
        assert main(["generate", "--examples", "200", "--seed", "9", "--tools", "on", "--output", str(out)]) == 0
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert main(["generate", "--examples", "200", "--seed", "9", "--tools", "on", "--output", str(tmp_path / "b")]) == 0
    assert hashlib.sha256((tmp_path / "b").read_bytes()).hexdigest() == digest  # same seed, same bytes

    def key(convs):
        return hashlib.sha256("".join(json.dumps(c.to_openai(), sort_keys=True) for c in convs).encode()).hexdigest()

    read = key(open_data(out, fmt="openai").conversations())
    assert read == key(generate(200, seed=9, tools=True))
    assert read != key(generate(200, seed=10, tools=True))
    # and a check over the file counts what a check over the generated conversations counts
    base = [*DIFFER, "--checks", "prompt-prefix,answer-stop,stop-words", "--tools", "on", "--jobs", "1"]
    check(tmp_path, "gen", *base, "--examples", "200", "--seed", "9")
    check(tmp_path, "data", *base, "--data", str(out), "--data-format", "openai")
    counts = [[(c["name"], c["examples_run"], c["errors"], c["warnings"]) for c in
               json.loads((tmp_path / d / "report.json").read_text())["targets"][0]["checks"]] for d in ("gen", "data")]
    assert counts[0] == counts[1]


def test_jobs_workers_keep_the_render_time_limit(tmp_path):
    """A template that loops only on long conversations still stops at its CPU-time limit inside a worker."""
    (tmp_path / "slow.jinja").write_text(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if messages|length > 7 %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
        "{% endfor %}{% endif %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "check", "--model", "qwen2.5", "--train",
                           "jinja:" + fixture("templates/chatml.jinja"), "--deploy", "hf:slow.jinja,timeout=0.5",
                           "--examples", "800", "--jobs", "2", "--report-dir", "rep"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("harness: error:") and "Traceback" not in proc.stderr


def test_python_m_harness_cli_and_bad_jobs_or_shard(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "check", "--train", "jinja:.", "--deploy", "hf:.",
                           "--shard", "4/3"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "shard='4/3'" in proc.stderr and "Traceback" not in proc.stderr
    assert main(["check", "--train", "jinja:.", "--deploy", "hf:.", "--jobs", "0"]) == 2
