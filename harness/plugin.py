"""pytest plugin (``pytest11`` entry point ``harness``). Options start ``--harness-``; each has an ini twin.

A user's gate in ``cases/`` is three lines::

    from harness.plugin import gate

    test_release = gate(model="qwen2.5", train="jinja:train.jinja", deploy=["hf:."])

Each check becomes one test item; the sweep runs once per (model, train, deploy) and is shared. For
property tests, ``harness_pair`` + ``assert_consistent`` inside ``@given(conversations())`` lets
hypothesis shrink.
"""

from __future__ import annotations

import base64
import itertools
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import pytest

from harness.checks import CHECKS, Case, Failure, Pair, Skip
from harness.diff import TokenDiff
from harness.errors import HarnessError, RenderRejected
from harness.renderers.base import Encoded

_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("model", "string", None, "zoo model name (default qwen2.5)"),
    ("model-dir", "string", None, "a Hugging Face model dir to load the tokenizer and template from"),
    ("train", "string", None, "training side spec, e.g. jinja:train.jinja"),
    ("deploy", "linelist", None, "deploy side spec(s), e.g. hf:."),
    ("examples", "string", "2000", "conversations per gate target"),
    ("seed", "string", "0", "generator seed"),
    ("report-dir", "string", None, "write report.json/report.md here at session end"),
    ("strict", "bool", False, "fail gate items on warnings too"),
    ("data", "string", None, "sweep the records of this training file (JSON/JSONL; format detected) instead of "
                             "generated conversations; with --harness-examples given too, both"),
)


@dataclass(frozen=True)
class Settings:
    model: str | None
    model_dir: str | None
    train: str | None
    deploy: tuple[str, ...]
    examples: int
    seed: int
    report_dir: str | None
    strict: bool
    data: str | None = None
    #: --harness-examples given on the command line (with --harness-data: also sweep that many generated)
    examples_given: bool = False


_SETTINGS = pytest.StashKey[Settings]()
#: numbers gate() calls in import order (the same on every xdist worker), so reports list targets as written
_GATES = itertools.count()
_RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("template-harness")
    for name, kind, default, help_ in _OPTIONS:
        ini = "harness_" + name.replace("-", "_")
        action = "append" if kind == "linelist" else "store_true" if kind == "bool" else "store"
        group.addoption(f"--harness-{name}", action=action, dest=ini, default=None, help=help_ + f" (ini: {ini})")
        parser.addini(ini, help_, type=kind, default=default)


def _get(config: pytest.Config, name: str) -> Any:
    ini = "harness_" + name.replace("-", "_")
    value = config.getoption(ini)
    return value if value is not None else config.getini(ini)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness_gate: a template-harness gate item (set by harness.plugin.gate)")
    try:
        examples, seed = int(_get(config, "examples")), int(_get(config, "seed"))
    except ValueError:
        raise pytest.UsageError("--harness-examples and --harness-seed must be integers, e.g. --harness-seed 0")
    if examples <= 0 or seed < 0:
        raise pytest.UsageError("--harness-examples must be >= 1 and --harness-seed >= 0")
    config.stash[_SETTINGS] = Settings(_get(config, "model") or None, _get(config, "model-dir") or None,
                                       _get(config, "train") or None, tuple(_get(config, "deploy") or ()),
                                       examples, seed, _get(config, "report-dir") or None, bool(_get(config, "strict")),
                                       _get(config, "data") or None, config.getoption("harness_examples") is not None)
    config.stash[_RESULTS] = {}


@pytest.fixture(scope="session")
def harness_tokenizer(pytestconfig: pytest.Config):
    """The tokenizer chosen by --harness-model / --harness-model-dir (default qwen2.5)."""
    from harness.api import load_model

    s = pytestconfig.stash[_SETTINGS]
    return _input(lambda: load_model(model=s.model, model_dir=s.model_dir))


@pytest.fixture(scope="session")
def harness_pair(pytestconfig: pytest.Config, harness_tokenizer) -> Pair:
    """The pair from --harness-train and the first --harness-deploy (defaults: jinja:. vs hf:.)."""
    from harness.api import make_pair

    s = pytestconfig.stash[_SETTINGS]
    return _input(lambda: make_pair(harness_tokenizer, s.train or "jinja:.", (s.deploy or ("hf:.",))[0]))


def _input(make):
    try:
        return make()
    except HarnessError as exc:
        pytest.fail(f"template-harness input error: {exc}", pytrace=False)


def assert_consistent(pair: Pair, conv, *, checks: Sequence[str] | None = None, strict: bool = False) -> None:
    """Assert every check holds on ``conv``; the message leads with the TokenDiff. For ``@given`` tests."""
    case = Case(pair, conv)
    try:
        case.train  # noqa: B018
    except RenderRejected:
        from hypothesis import reject

        reject()
    for name in checks or CHECKS:
        try:
            failure = CHECKS[name].run(case)
        except (Skip, RenderRejected):
            continue
        if failure is not None and (strict or failure.severity == "error"):
            raise AssertionError(describe_failure(failure))


def describe_failure(f: Failure) -> str:
    parts = [f"[{f.check}] {f.severity}: {f.explanation}"]
    if f.diff is not None and f.diff.index is not None:
        parts.append(f.diff.render())
    if f.tokens:
        parts.append(f"tokens: {f.tokens}")
    if f.conversation.source is not None:
        parts.append(f"record: {f.conversation.source} (as found)")
    parts.append("counterexample: " + f.conversation.to_json())
    return "\n".join(parts)


def gate(*, train: str, deploy: str | Sequence[str], model: str | None = None, model_dir: str | None = None,
         examples: int | None = None, seed: int | None = None, checks: Sequence[str] | None = None,
         strict: bool | None = None):
    """Build a parametrised test: one item per (deploy spec, check), sharing one sweep per deploy spec."""
    deploys = [deploy] if isinstance(deploy, str) else list(deploy)
    names = list(checks or CHECKS)
    gate_number = next(_GATES)
    target = {"train": train, "model": model, "model_dir": model_dir, "examples": examples, "seed": seed,
              "strict": strict}

    @pytest.mark.harness_gate
    @pytest.mark.parametrize("harness_check", names)
    @pytest.mark.parametrize("harness_deploy", deploys)
    def test_gate(harness_deploy: str, harness_check: str, request: pytest.FixtureRequest) -> None:
        order = (gate_number, deploys.index(harness_deploy))
        result, s = _gate_result(request.config, {**target, "deploy": harness_deploy, "order": order})
        check = next(c for c in result.checks if c.name == harness_check)
        if check.verdict == "skipped":
            pytest.skip(f"{harness_check}: {check.note}")
        if check.verdict == "fail" or (check.verdict == "warn" and s.strict):
            pytest.fail(f"{check.errors} errors, {check.warnings} warnings in {check.examples_run} conversations\n"
                        + describe_failure(check.failure), pytrace=False)

    return test_gate


def _gate_result(config: pytest.Config, target: dict[str, Any]):
    from harness.api import load_model, make_pair
    from harness.runner import run_pair

    base = config.stash[_SETTINGS]
    s = replace(base, model=target["model"] or base.model, model_dir=target["model_dir"] or base.model_dir,
                examples=target["examples"] or base.examples, seed=base.seed if target["seed"] is None else target["seed"],
                strict=base.strict if target["strict"] is None else target["strict"])
    key = (s.model, s.model_dir, target["train"], target["deploy"], s.examples, s.seed, s.data, s.examples_given)
    cache = config.stash[_RESULTS]
    if key not in cache:
        def build():
            tok = load_model(model=s.model, model_dir=s.model_dir)
            pair = make_pair(tok, target["train"], target["deploy"])
            return run_pair(pair, _conversations(s)), tok.describe(), target["order"]

        cache[key] = _input(build)
    return cache[key][0], s


def _conversations(s: Settings):
    """What a gate sweeps: the ``--harness-data`` records (scanned first: a bad record fails the gate naming it),
    then generated conversations — always without data, only with ``--harness-examples`` given with it."""
    from itertools import chain

    from harness.generate import generate

    generated = generate(s.examples, seed=s.seed, tools="any", reasoning=False)
    if s.data is None:
        return generated
    from harness.data import open_data, scan

    source = open_data(Path(s.data))
    scan(source)
    return chain(source.conversations(), generated) if s.examples_given else source.conversations()


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> list[str] | None:
    """Explain ``assert a == b`` on Encoded or id sequences with a TokenDiff."""
    if op != "==":
        return None
    if isinstance(left, Encoded) and isinstance(right, Encoded):
        diff = TokenDiff.compute(left.ids, right.ids, piece=str, train_enc=left, deploy_enc=right)
        return ["Encoded ids differ:", *diff.render().splitlines()]
    if isinstance(left, TokenDiff):
        return ["token ids differ:", *left.render().splitlines()]
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand this worker's sweeps to the controller, which reports them all."""
    workeroutput = getattr(session.config, "workeroutput", None)
    results = session.config.stash.get(_RESULTS, {})
    if workeroutput is not None and results:
        import harness.parallel  # noqa: F401  (registers the pickling of read-only mappings in conversations)

        workeroutput["harness_results"] = base64.b64encode(pickle.dumps(list(results.items()))).decode("ascii")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the pytest-xdist controller: collect a worker's sweeps (a target swept on two workers is the same)."""
    data = getattr(node, "workeroutput", {}).get("harness_results")
    if data:
        import harness.parallel  # noqa: F401

        results = node.config.stash[_RESULTS]
        for key, value in pickle.loads(base64.b64decode(data)):
            results.setdefault(key, value)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, {})
    if not results or hasattr(config, "workerinput"):  # xdist workers report through the controller
        return
    results = dict(sorted(results.items(), key=lambda kv: kv[1][2]))  # gate and deploy order, whichever worker swept
    strict = config.stash[_SETTINGS].strict
    bad = [(k[2], k[3]) for k, (r, *_) in results.items() if r.failed(strict)]
    terminalreporter.write_line(f"template-harness: {len(results)} target(s) swept, {len(bad)} inconsistent"
                                + (": " + "; ".join(f"{t} vs {d}" for t, d in bad) if bad else ""))
    s = config.stash[_SETTINGS]
    if s.report_dir:
        from harness import __version__
        from harness.report import build_report, write_reports

        targets = [r for r, *_ in results.values()]
        model = next(iter(results.values()))[1]
        report = build_report(targets, version=__version__, seed=s.seed, examples=s.examples, model=model)
        for path in write_reports(report, Path(s.report_dir), ("json", "md")):
            terminalreporter.write_line(f"template-harness report: {path}")
