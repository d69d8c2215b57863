"""Every entry of known_divergences.toml, as a strict xfail: it must keep failing its named check."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.api import load_model, make_pair
from harness.generate import generate
from harness.runner import run_pair

ENTRIES = tomllib.loads((Path(__file__).with_name("known_divergences.toml")).read_text("utf-8"))["divergence"]
FLAGS = {"on": True, "off": False, "any": "any"}


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"], marks=pytest.mark.xfail(strict=True, reason=e["reason"]))
                                   for e in ENTRIES])
def test_known_divergence(entry, pytestconfig):
    pair = make_pair(load_model(model=entry["model"]), entry["train"], entry["deploy"])
    convs = generate(200, seed=0, tools=FLAGS[entry.get("tools", "any")], reasoning=FLAGS[entry.get("reasoning", "off")])
    result = run_pair(pair, convs, checks=[entry["check"]])
    check = result.checks[0]
    assert check.verdict != "fail", f"{entry['id']}: {check.failure.explanation if check.failure else ''}"
