"""``harness lf-table``: the LLaMA-Factory verdict document is reproducible byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError

try:
    from harness.renderers.llamafactory.upstream import import_llamafactory

    import_llamafactory()
except InputError as exc:  # the optional extra is not installed
    pytest.skip(f"llamafactory is not importable ({exc})", allow_module_level=True)

from harness import lftable  # noqa: E402

pytestmark = pytest.mark.real_tokenizer
ROOT = Path(__file__).resolve().parent.parent
SMALL = (("qwen", "qwen2.5"), ("glm4", "glm4"))


def test_rows_cover_the_required_templates():
    names = {t for t, _ in lftable.ROWS}
    assert {"qwen", "qwen3", "qwen3_nothink", "glm4", "deepseek3", "deepseekr1", "llama3", "mistral"} <= names
    assert set(lftable.REJECTS) <= names
    assert {c.template for c in lftable.CAUSES + lftable.HARNESS_BUGS} <= names


def test_same_seed_gives_a_byte_identical_document(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    assert lftable.main(examples=12, seed=3, out=a, rows=SMALL) == 0
    assert lftable.main(examples=12, seed=3, out=b, rows=SMALL) == 0
    text = a.read_text(encoding="utf-8")
    assert a.read_bytes() == b.read_bytes()
    assert "harness check --model qwen2.5 --train llamafactory:qwen --deploy hf:. --examples 12 --seed 3" in text
    assert "| `glm4` | glm4 |" in text
    # every failing check has a row with a counterexample and a divergence or explanation
    assert "## Failing checks" in text and "{\"messages\"" in text


def test_diagnosis_matches_the_real_divergence(qwen):
    """The empty-system cause is given only for that divergence; anything else is 'undiagnosed'."""
    from harness.api import make_pair
    from harness.checks import CHECKS
    from harness.conversation import Conversation

    pair = make_pair(qwen, "llamafactory:qwen", "hf:.")
    conv = Conversation.from_openai({"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "ok"}]})
    failure = CHECKS["prompt-prefix"].run(pair.case(conv, detailed=True))
    assert failure is not None and "'You'" in failure.diff.headline()
    assert lftable.diagnose("qwen", "prompt-prefix", failure).startswith("LF trains `system or default_system`")
    assert lftable.diagnose("mistral", "prompt-prefix", failure).startswith("undiagnosed")


def test_cli_lf_table(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setattr(lftable, "ROWS", SMALL[:1])
    monkeypatch.setattr(lftable.main, "__defaults__", (1000, 0, lftable.DEFAULT_OUT, SMALL[:1]))
    out = tmp_path / "doc.md"
    assert main(["lf-table", "--examples", "5", "--seed", "1", "--out", str(out)]) == 0
    assert "--examples 5 --seed 1" in out.read_text(encoding="utf-8")


@pytest.mark.slow
def test_committed_document_is_what_the_command_writes(tmp_path):
    """docs/llamafactory.md is exactly `harness lf-table --examples 1000 --seed 0` (≈1 min)."""
    out = tmp_path / "llamafactory.md"
    lftable.main(examples=1000, seed=0, out=out)
    assert out.read_bytes() == (ROOT / "docs" / "llamafactory.md").read_bytes()
