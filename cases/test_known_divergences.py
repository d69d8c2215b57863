"""Every entry of known_divergences.toml, as a strict xfail: the test asserts the named check passes, so it fails
while the divergence lasts (the check gives the entry's verdict, fail or warn) and XPASSes, failing the run, once
the template is fixed. Any other verdict (skipped, an error) fails outright."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.api import load_model, make_pair
from harness.generate import generate
from harness.runner import run_pair

ENTRIES = tomllib.loads((Path(__file__).with_name("known_divergences.toml")).read_text("utf-8"))["divergence"]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FLAGS = {"on": True, "off": False, "any": "any"}


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("entry", [pytest.param(e, id=e["id"], marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=e["reason"]))
                                   for e in ENTRIES])
def test_known_divergence(entry, pytestconfig):
    train, deploy = (entry[side].replace("{fixtures}", str(FIXTURES)) for side in ("train", "deploy"))
    pair = make_pair(load_model(model=entry["model"]), train, deploy)
    convs = generate(200, seed=0, tools=FLAGS[entry.get("tools", "any")], reasoning=FLAGS[entry.get("reasoning", "off")])
    result = run_pair(pair, convs, checks=[entry["check"]])
    check = result.checks[0]
    expected = entry.get("verdict", "fail")  # the known divergence's verdict
    if check.verdict not in (expected, "pass"):  # pytest.fail is not an AssertionError: a plain failure, never an xfail
        pytest.fail(f"{entry['id']}: the {entry['check']} check says {check.verdict!r}, neither the known "
                    f"divergence ({expected!r}) nor fixed ('pass'); update the entry")
    # The consistent stack we want: fails (xfail) while the divergence lasts, XPASSes (strict: the run fails) once fixed.
    assert check.verdict == "pass", f"{entry['id']} still diverges: {check.failure.explanation if check.failure else ''}"
