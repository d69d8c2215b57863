"""vLLM fidelity: the ``hf:`` deploy renderer vs the real vLLM 0.33 OpenAI chat path, prompt by prompt.

    python benchmarks/vllm_fidelity.py [--examples 750] [--seed 0] [--only REGEX] [--json PATH]

For each target (a zoo model's own template, or a third-party template served with ``--chat-template``, on a
zoo tokenizer), ``--examples`` conversations from ``generate(n, seed, tools="any", reasoning="any")``; for each
prompt prefix ``messages[:k]`` (k = each assistant index) the ids of ``hf:`` (``render(prefix, detail=False)``,
the checks' path) are compared with the ids the real vLLM server code computes for the same OpenAI request: a
``ChatCompletionRequest`` built from the request JSON goes through ``OnlineRenderer.render_chat`` (tool dicts
from ``request.tools``, ``build_chat_params``, content-format detection, ``parse_chat_messages``,
``safe_apply_chat_template``, tokenisation with the request's ``add_special_tokens=False``) of a real
``HfRenderer`` over the tokenizer vLLM's own ``get_tokenizer(dir, tokenizer_mode="hf")`` loads. Only the
``ModelConfig`` is duck-typed (:func:`model_config`): the zoo dirs hold tokenizer files, no ``config.json``.

Both sides refusing a prompt (a template's ``raise_exception``) agree; one side refusing differs. Every
difference gets a reason (:func:`explain`); none is expected. ``strftime_now`` is pinned on the vLLM side to
``harness.sandbox.PINNED_NOW`` (the harness renders with a fixed date so reports are reproducible; a live
server prints today's date, which no comparison can match). vLLM imports once per process (~20 s).
Prints a table and writes JSON (no timings in the JSON: same seed, same bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _datetime
import json
import re
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.conversation import Conversation
from harness.corpus import _short
from harness.generate import generate
from harness.sandbox import PINNED_NOW

DEFAULT_JSON = Path("benchmarks/vllm_fidelity.json")


@dataclass(frozen=True)
class Target:
    """A served stack: zoo ``model`` (tokenizer, and template when ``template`` is None), an optional template
    file served with ``--chat-template``, and chat-template kwargs (``--default-chat-template-kwargs``; on our
    side ``hf:...,key=value``)."""

    name: str
    model: str
    template: str | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def spec(self) -> str:
        opts = "".join(f",{k}={json.dumps(v)}" for k, v in self.kwargs)
        return f"hf:{self.template or '.'}{opts}"


def _trl(name: str) -> str:
    return str(_site() / "trl" / "chat_templates" / f"{name}.jinja")


def _axolotl(name: str) -> str:
    return str(_site() / "axolotl" / "utils" / "chat_templates" / "templates" / f"{name}.jinja")


def _site() -> Path:
    import importlib.metadata

    return Path(str(importlib.metadata.distribution("transformers").locate_file("")))


def targets() -> list[Target]:
    """The zoo models' own templates (Qwen3 with thinking on and off), then third-party templates the
    calibration corpus holds, among them templates vLLM detects as iterating over content parts."""
    return [
        Target("qwen2.5", "qwen2.5"),
        Target("qwen3", "qwen3"),
        Target("qwen3 enable_thinking=false", "qwen3", kwargs=(("enable_thinking", False),)),
        Target("qwen3-alt", "qwen3-alt"),
        Target("glm4", "glm4"),
        Target("deepseek-v3", "deepseek-v3"),
        Target("deepseek-r1", "deepseek-r1"),
        Target("deepseek-r1-distill-qwen", "deepseek-r1-distill-qwen"),
        Target("llama3", "llama3"),
        Target("mistral-v3", "mistral-v3"),
        Target("trl:qwen2_5_vl", "qwen2.5", _trl("qwen2_5_vl")),
        Target("trl:qwen3_6", "qwen3", _trl("qwen3_6")),
        Target("trl:gemma3", "qwen2.5", _trl("gemma3")),
        Target("trl:gemma4", "qwen2.5", _trl("gemma4")),
        Target("trl:gemma4_v2", "qwen2.5", _trl("gemma4_v2")),
        Target("trl:smolvlm", "qwen2.5", _trl("smolvlm")),
        Target("trl:llava_next", "llama3", _trl("llava_next")),
        Target("trl:llama3_1", "llama3", _trl("llama3_1")),
        Target("axolotl:chatml", "qwen2.5", _axolotl("chatml")),
        Target("axolotl:llama3_2_vision", "llama3", _axolotl("llama3_2_vision")),
        Target("axolotl:llava", "qwen2.5", _axolotl("llava")),
    ]


# --- the real vLLM side -----------------------------------------------------------------------------------------

class _PinnedDatetime(_datetime.datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _datetime.datetime:  # type: ignore[override]
        return PINNED_NOW


def pin_clock() -> None:
    """transformers' ``strftime_now`` (what vLLM's templates call) reads ``datetime.now()`` at call time."""
    from transformers.utils import chat_template_utils

    chat_template_utils.datetime = _PinnedDatetime  # type: ignore[attr-defined]


def model_config(model_dir: str) -> Any:
    """What ``HfRenderer``, ``OnlineRenderer``, ``parse_chat_messages`` and ``resolve_chat_template`` read of a
    ``vllm.config.ModelConfig`` for a text-only model with an HF tokenizer (a real one needs ``config.json``)."""
    ns = types.SimpleNamespace
    return ns(model=model_dir, tokenizer=model_dir, tokenizer_revision=None, revision=None, code_revision=None,
              trust_remote_code=False, enable_prompt_embeds=False, hf_config=ns(model_type=""),
              renderer_num_workers=1, supports_multimodal_inputs=False, multimodal_config=None,
              is_multimodal_model=False, max_model_len=1 << 30, runner_type="generate", tokenizer_mode="hf",
              skip_tokenizer_init=False, is_encoder_decoder=False, get_multimodal_config=lambda: None,
              allowed_local_media_path="", allowed_media_domains=None)


class VllmChat:
    """One ``vllm serve DIR --tokenizer-mode hf [--chat-template FILE] [--default-chat-template-kwargs ...]
    --enable-auto-tool-choice`` server's prompt path, without the HTTP layer."""

    def __init__(self, model_dir: str, chat_template: str | None = None,
                 default_kwargs: dict[str, Any] | None = None) -> None:
        from vllm.renderers.hf import HfRenderer
        from vllm.renderers.online_renderer import OnlineRenderer
        from vllm.tokenizers import get_tokenizer

        mc = model_config(model_dir)
        self.tokenizer = get_tokenizer(model_dir, tokenizer_mode="hf")
        config = types.SimpleNamespace(model_config=mc, parallel_config=types.SimpleNamespace(
            _api_process_rank=0, _api_process_count=1), observability_config=None)
        self.renderer = HfRenderer(config, self.tokenizer)
        self.online = OnlineRenderer(mc, self.renderer, request_logger=None, chat_template=chat_template,
                                     chat_template_content_format="auto", enable_auto_tools=True,
                                     default_chat_template_kwargs=default_kwargs)
        self._loop = asyncio.new_event_loop()

    def ids(self, request: dict[str, Any]) -> list[int]:
        """Prompt ids for an OpenAI chat request body (JSON-able dict); raises what the server answers 400 to."""
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        req = ChatCompletionRequest(model="m", **json.loads(json.dumps(request)))
        out = self._loop.run_until_complete(self.online.render_chat(req))
        if not isinstance(out, tuple):
            raise ValueError(f"vLLM refused the request: {out}")
        _, (engine_input,) = out
        return list(engine_input["prompt_token_ids"])

    def content_format(self, tools: list[dict[str, Any]] | None) -> str:
        from vllm.renderers.hf import resolve_chat_template_content_format

        return resolve_chat_template_content_format(self.online.chat_template, tools, "auto", self.tokenizer,
                                                    model_config=self.renderer.model_config)


# --- the comparison ---------------------------------------------------------------------------------------------

Outcome = tuple[str, Any]  # ("ok", ids) or ("raise", "Type: message")


def attempt(fn: Callable[[], Any]) -> Outcome:
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - a template refusing a prompt raises anything
        return "raise", f"{type(exc).__name__}: {str(exc)[:200]}"


def request_body(prompt: Conversation) -> dict[str, Any]:
    """The OpenAI request a client sends for the next answer after ``prompt``."""
    return {**prompt.to_openai("request"), "add_generation_prompt": True}


@dataclass
class Row:
    target: str
    spec: str
    content_format: str = ""
    conversations: int = 0
    prompts: int = 0
    agree: int = 0
    both_refuse: int = 0
    differ: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def explain(ours: Outcome, theirs: Outcome, decode: Callable[[list[int]], str]) -> str:
    """A reason for one difference, from what the two outcomes show."""
    if ours[0] != theirs[0]:
        return f"only {'hf:' if ours[0] == 'raise' else 'vLLM'} refuses"
    a, b = decode(ours[1]), decode(theirs[1])
    if a == b:
        return "same text, other ids (tokenisation)"
    return "text differs"


def measure(target: Target, n: int, seed: int, chat: VllmChat | None = None,
            deploy: Any | None = None) -> Row:
    """Compare ``hf:`` (or ``deploy``, a renderer to test the comparison itself) with vLLM on ``n``
    conversations."""
    from harness.specs import build_renderer
    from harness.zoo import load_zoo_tokenizer, zoo_model_dir

    tok = load_zoo_tokenizer(target.model)
    if deploy is None:
        deploy = build_renderer(target.spec, tok, side="deploy")
    if chat is None:
        source = Path(target.template).read_text(encoding="utf-8") if target.template else None
        chat = VllmChat(str(zoo_model_dir(target.model)), source, dict(target.kwargs) or None)
    row = Row(target.name, _short(target.spec))  # $SITE/... : the same JSON on every machine
    formats = set()
    decode = lambda ids: chat.tokenizer.decode(ids)  # noqa: E731
    for index, conv in enumerate(generate(n, seed=seed, tools="any", reasoning="any")):
        row.conversations += 1
        formats.add(chat.content_format(conv.tool_dicts()))
        for k in conv.assistant_indices:
            prompt = conv.prefix(k)
            row.prompts += 1
            ours = attempt(lambda: list(deploy.render(prompt, add_generation_prompt=True, detail=False).ids))
            theirs = attempt(lambda: chat.ids(request_body(prompt)))
            if ours[0] == theirs[0] == "raise":
                row.both_refuse += 1
                row.agree += 1
            elif ours == theirs:
                row.agree += 1
            else:
                row.differ += 1
                reason = explain(ours, theirs, decode)
                row.reasons[reason] = row.reasons.get(reason, 0) + 1
                if len(row.examples) < 3:
                    row.examples.append(_show(index, k, ours, theirs, decode))
    row.content_format = "/".join(sorted(formats))
    return row


def _show(index: int, k: int, ours: Outcome, theirs: Outcome, decode: Callable[[list[int]], str]) -> str:
    if ours[0] == "raise" or theirs[0] == "raise":
        return f"#{index} messages[:{k}]: hf: {_brief(ours)} | vLLM: {_brief(theirs)}"
    a, b = decode(ours[1]), decode(theirs[1])
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"#{index} messages[:{k}] char {i}: hf: {a[max(0, i - 50):i + 60]!r} | vLLM: {b[max(0, i - 50):i + 60]!r}"


def _brief(o: Outcome) -> str:
    return o[1][:160] if o[0] == "raise" else f"{len(o[1])} ids"


HEADER = f"{'target':<28} {'format':<13} {'convs':>6} {'prompts':>7} {'agree':>7} {'refuse':>6} {'differ':>6}  reasons"


def line(row: Row) -> str:
    reasons = "; ".join(f"{r} ×{c}" for r, c in sorted(row.reasons.items())) or "-"
    return (f"{row.target:<28} {row.content_format:<13} {row.conversations:>6} {row.prompts:>7} {row.agree:>7} "
            f"{row.both_refuse:>6} {row.differ:>6}  {reasons}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=750, help="conversations per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="regex on target names")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pin_clock()
    rows = []
    print(HEADER)
    for target in targets():
        if args.only and not re.search(args.only, target.name):
            continue
        rows.append(measure(target, args.examples, args.seed))
        print(line(rows[-1]), flush=True)
        for example in rows[-1].examples:
            print(f"    {example}")
    prompts, agree = sum(r.prompts for r in rows), sum(r.agree for r in rows)
    convs = sum(r.conversations for r in rows)
    print(f"{'total':<28} {'':<13} {convs:>6} {prompts:>7} {agree:>7}   agreement {agree / max(prompts, 1):.4%}"
          f"  ({time.perf_counter() - start:.0f} s)")
    args.json.write_text(json.dumps({"examples": args.examples, "seed": args.seed,
                                     "rows": [asdict(r) for r in rows]}, indent=1, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
