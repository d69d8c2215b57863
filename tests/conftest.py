"""Shared helpers for the self-tests: sweeps over the zoo's Qwen2.5 with fixture templates."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.api import load_model, make_pair
from harness.generate import generate
from harness.runner import TargetResult, run_pair

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """Tokenizer verification records go to a temp dir for this session: no run depends on a warm user cache."""
    os.environ["HARNESS_VERIFY_CACHE_DIR"] = tempfile.mkdtemp(prefix="harness-verified-")


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = os.environ.pop("HARNESS_VERIFY_CACHE_DIR", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def tree_hash(path: Path) -> str:
    """sha256 over every file name and content below ``path`` (a model dir must come out of a run unchanged)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _have_llamafactory() -> bool:
    from harness.errors import InputError
    from harness.renderers.llamafactory.upstream import import_llamafactory

    try:
        import_llamafactory()
    except InputError:  # the optional extra is not installed
        return False
    return True


needs_lf = pytest.mark.skipif(not _have_llamafactory(), reason="llamafactory is not importable")


def fixture(rel: str) -> str:
    return str(FIXTURES / rel)


def sweep(train: str, deploy: str, *, model: str = "qwen2.5", n: int = 150, checks=None, seed: int = 0,
          model_dir=None, **gen) -> TargetResult:
    tok = load_model(model=None if model_dir else model, model_dir=model_dir)
    pair = make_pair(tok, train, deploy)
    gen.setdefault("tools", "any")
    gen.setdefault("reasoning", False)
    return run_pair(pair, generate(n, seed=seed, **gen), checks=checks)


def result_of(target: TargetResult, name: str):
    return next(c for c in target.checks if c.name == name)


@pytest.fixture()
def base_eos_dir(tmp_path):
    """A Qwen2.5 dir as a base model ships it: tokenizer eos and generation_config eos only <|endoftext|>."""
    import json
    import shutil

    from harness.zoo import zoo_model_dir

    model_dir = tmp_path / "base-eos"
    shutil.copytree(zoo_model_dir("qwen2.5"), model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["eos_token"] = "<|endoftext|>"
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    (model_dir / "generation_config.json").write_text(json.dumps({"eos_token_id": 151643}))
    return model_dir


@pytest.fixture(scope="session")
def qwen():
    return load_model(model="qwen2.5")
