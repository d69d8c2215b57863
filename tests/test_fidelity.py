"""Fidelity: our reimplementation of HF/vLLM rendering (harness/sandbox.py + renderers) vs the real transformers.

For every zoo model and every generated conversation (tools and reasoning included):

* deploy: ``HFRenderer`` text and ids of ``conv.prefix(k)`` with the generation prompt, for each assistant
  index ``k`` (ids both with and without ``detail``: the reports' and the checks' tokenisation paths), vs
  ``tok.hf.apply_chat_template(vllm_messages(...), add_generation_prompt=True)`` (text, and ids with
  ``tokenize=True, return_dict=False``; transformers 5 tokenises with ``add_special_tokens=False``);
* train: ``JinjaTrainRenderer`` text and ids of the whole conversation vs
  ``tok.hf.apply_chat_template(dataset_messages(conv))``.

A template may refuse a shape (``raise_exception``): both sides raising counts as agreement, only one side
raising as a disagreement. A conversation agrees when every comparison made on it agrees. ``pytest -s``
prints the table. The 2000-conversation sweep is ``slow``: it runs only when ``-m`` selects ``slow``.
"""

from __future__ import annotations

import datetime as _datetime
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from transformers.utils import chat_template_utils

from harness.api import make_pair
from harness.conversation import Conversation
from harness.generate import generate
from harness.renderers.hf import vllm_messages
from harness.renderers.jinja import dataset_messages
from harness.sandbox import PINNED_NOW
from harness.zoo import load_zoo_tokenizer

pytestmark = pytest.mark.real_tokenizer

MODELS = ("qwen2.5", "qwen3", "glm4", "deepseek-v3", "deepseek-r1", "deepseek-r1-distill-qwen", "llama3", "mistral-v3")
DEFAULT_N = 200
SLOW_N = 2000
SEED = 0


class _PinnedDatetime(_datetime.datetime):
    """``datetime`` whose ``now()`` is harness.sandbox.PINNED_NOW."""

    @classmethod
    def now(cls, tz: Any = None) -> _datetime.datetime:  # type: ignore[override]
        return PINNED_NOW


@pytest.fixture(autouse=True)
def pinned_hf_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin transformers' ``strftime_now`` to our date.

    Llama-3.x templates print "Today Date: {{ strftime_now('%d %b %Y') }}" unless ``date_string`` is passed.
    transformers' ``strftime_now`` calls ``datetime.now()`` (today), ours reports ``PINNED_NOW`` so reports stay
    reproducible. Passing ``date_string=...`` to apply_chat_template would make both agree too, but it would
    also skip the ``strftime_now`` branch of the template on the transformers side only; patching the
    ``datetime`` name that transformers' ``strftime_now`` closure looks up at call time keeps both sides on the
    same template path, so the comparison still covers it.
    """
    monkeypatch.setattr(chat_template_utils, "datetime", _PinnedDatetime)


Outcome = tuple[str, Any]  # ("ok", value) or ("raise", "ExceptionType: message")


def attempt(fn: Callable[[], Any]) -> Outcome:
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - a template refusing a shape raises anything (TemplateError, TypeError…)
        return "raise", f"{type(exc).__name__}: {exc}"


def same(ours: Outcome, theirs: Outcome) -> bool:
    return ours[0] == theirs[0] and (ours[0] == "raise" or ours[1] == theirs[1])


def same_reason(ours: Outcome, theirs: Outcome) -> bool:
    """Both refused with the same exception and message (ours wraps it: "RenderRejected: … TypeError: …")."""
    return ours[1].endswith(theirs[1])


@dataclass
class Fidelity:
    model: str
    convs: int = 0
    prompts: int = 0  # deploy prompts compared (one per assistant message)
    agree: int = 0  # conversations on which every comparison agreed
    agree_deploy: int = 0
    agree_train: int = 0
    deploy_raised: int = 0  # prompts both sides refused
    train_raised: int = 0  # conversations both sides refused
    other_reason: int = 0  # renders both refused, but with a different exception or message (not asserted)
    first: list[str] = field(default_factory=list)  # descriptions of the first few disagreements

    def row(self) -> str:
        return (f"{self.model:<26} {self.convs:>6} {self.prompts:>7} {self.agree_deploy:>7} {self.agree_train:>6} "
                f"{self.agree:>6}/{self.convs:<6} {self.deploy_raised:>9} {self.train_raised:>9} {self.other_reason:>8}")


HEADER = (f"{'model':<26} {'convs':>6} {'prompts':>7} {'deploy':>7} {'train':>6} {'agree':>13} "
          f"{'dep-raise':>9} {'trn-raise':>9} {'reason≠':>8}")


def _first_diff(a: Any, b: Any) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def describe(what: str, index: int, k: int | None, conv: Conversation, ours: Outcome, theirs: Outcome,
             piece: Callable[[int], str]) -> str:
    where = f"{what}: conversation #{index}" + (f", prompt for messages[{k}]" if k is not None else "")
    if ours[0] != theirs[0]:
        detail = f"ours {ours[0]}: {str(ours[1])[:300]!r}\n  transformers {theirs[0]}: {str(theirs[1])[:300]!r}"
    elif isinstance(ours[1], str):
        i = _first_diff(ours[1], theirs[1])
        detail = (f"texts differ at char {i} (len {len(ours[1])} vs {len(theirs[1])}):\n"
                  f"  ours:         {ours[1][max(0, i - 60):i + 60]!r}\n"
                  f"  transformers: {theirs[1][max(0, i - 60):i + 60]!r}")
    else:
        i = _first_diff(ours[1], theirs[1])
        show = lambda ids: " ".join(f"{t}:{piece(t)!r}" for t in ids[max(0, i - 3):i + 4])  # noqa: E731
        detail = (f"ids differ at token {i} (len {len(ours[1])} vs {len(theirs[1])}):\n"
                  f"  ours:         {show(ours[1])}\n  transformers: {show(theirs[1])}")
    return f"{where}\n  {detail}\n  conversation: {conv.to_json()[:600]}"


def measure(model: str, n: int, seed: int = SEED) -> Fidelity:
    tok = load_zoo_tokenizer(model)
    hf = tok.hf
    pair = make_pair(tok, "jinja:.", "hf:.")
    # both sides must read the same template, or the comparison proves nothing
    assert hf.chat_template == tok.chat_template == pair.deploy.template.source == pair.train.template.source

    fid = Fidelity(model)
    for index, conv in enumerate(generate(n, seed=seed, tools="any", reasoning="any")):
        tools = conv.tool_dicts()
        problems: list[tuple[str, int | None, Outcome, Outcome]] = []
        deploy_ok = True
        for k in conv.assistant_indices:
            prompt = conv.prefix(k)
            fid.prompts += 1
            text = attempt(lambda: pair.deploy.render_text(prompt, add_generation_prompt=True))
            fmt = pair.deploy.content_format(tools)  # what vLLM detects for the template (text parts or strings)
            hf_text = attempt(lambda: hf.apply_chat_template(vllm_messages(prompt, fmt), tools=tools,
                                                             add_generation_prompt=True, tokenize=False))
            ids = attempt(lambda: list(pair.deploy.render(prompt, add_generation_prompt=True).ids))
            # the checks' hot path: ids only, no offsets or spans (a separate tokenisation path)
            fast = attempt(lambda: list(pair.deploy.render(prompt, add_generation_prompt=True, detail=False).ids))
            hf_ids = attempt(lambda: list(hf.apply_chat_template(vllm_messages(prompt, fmt), tools=tools,
                                                                 add_generation_prompt=True, tokenize=True,
                                                                 return_dict=False)))
            for what, ours, theirs in (("deploy text", text, hf_text), ("deploy ids", ids, hf_ids),
                                       ("deploy ids (detail=False)", fast, hf_ids)):
                if not same(ours, theirs):
                    deploy_ok = False
                    problems.append((what, k, ours, theirs))
            if text[0] == hf_text[0] == "raise":
                fid.deploy_raised += 1
                fid.other_reason += not same_reason(text, hf_text)

        train_ok = True
        text = attempt(lambda: pair.train.render_text(conv))
        hf_text = attempt(lambda: hf.apply_chat_template(dataset_messages(conv), tools=tools, tokenize=False))
        ids = attempt(lambda: list(pair.train.render(conv).ids))
        hf_ids = attempt(lambda: list(hf.apply_chat_template(dataset_messages(conv), tools=tools, tokenize=True,
                                                             return_dict=False)))
        for what, ours, theirs in (("train text", text, hf_text), ("train ids", ids, hf_ids)):
            if not same(ours, theirs):
                train_ok = False
                problems.append((what, None, ours, theirs))
        if text[0] == hf_text[0] == "raise":
            fid.train_raised += 1
            fid.other_reason += not same_reason(text, hf_text)

        fid.convs += 1
        fid.agree_deploy += deploy_ok
        fid.agree_train += train_ok
        fid.agree += deploy_ok and train_ok
        for what, k, ours, theirs in problems:
            if len(fid.first) < 3:
                fid.first.append(describe(what, index, k, conv, ours, theirs, hf.convert_ids_to_tokens))
    return fid


@pytest.fixture(scope="module")
def table():
    rows: list[Fidelity] = []
    yield rows
    if rows:
        print("\n\nHF/vLLM rendering fidelity (ours vs transformers.apply_chat_template), conversations that agree:")
        print(HEADER)
        for fid in rows:
            print(fid.row())


def check(model: str, n: int, table: list[Fidelity]) -> None:
    fid = measure(model, n)
    table.append(fid)
    print(f"\n{HEADER}\n{fid.row()}")
    assert fid.convs == n and fid.prompts >= n
    assert fid.agree == fid.convs, (
        f"{model}: {fid.convs - fid.agree} of {fid.convs} conversations render differently from transformers "
        f"(deploy agrees on {fid.agree_deploy}, train on {fid.agree_train}); first disagreements:\n"
        + "\n".join(fid.first))


@pytest.mark.parametrize("model", MODELS)
def test_rendering_matches_transformers(model: str, table: list[Fidelity]) -> None:
    check(model, DEFAULT_N, table)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_rendering_matches_transformers_slow(model: str, table: list[Fidelity], request: pytest.FixtureRequest
                                            ) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip(f"{SLOW_N}-conversation sweep: select it with -m slow")
    check(model, SLOW_N, table)


def test_llama3_date_header_is_pinned_on_both_sides() -> None:
    """The clock patch is what makes llama3 agree: both sides print PINNED_NOW's date."""
    tok = load_zoo_tokenizer("llama3")
    conv = Conversation.from_openai([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    pair = make_pair(tok, "jinja:.", "hf:.")
    ours = pair.deploy.render_text(conv.prefix(1))
    theirs = tok.hf.apply_chat_template(vllm_messages(conv.prefix(1), pair.deploy.content_format(None)),
                                        add_generation_prompt=True, tokenize=False)
    assert PINNED_NOW.strftime("%d %b %Y") in ours
    assert ours == theirs
