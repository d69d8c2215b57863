"""``paddlenlp:PATH`` — training ids exactly as PaddleNLP's SFT builds them from a ``chat_template.json``.

``PATH`` is the ``chat_template.json`` (``{"system", "conversation": [user, bot], "query"}``) or a model dir
holding one. PaddleNLP 2.8.1's own ``ChatTemplate`` and ``ChatTemplateMixin.encode_chat_inputs`` do the
rendering and the per-part encoding (harness/_paddlenlp_real.py loads them from the installed wheel):
``system`` is rendered with the record's ``context`` (plus ``is_training=True``), each round's
``conversation`` pair with ``user``, ``bot``, ``index``, ``is_first``, ``is_last`` and the context, and every
part is encoded on its own with ``add_special_tokens=False``. ``query`` is inference-only and unused here.

Dataset form (PaddleNLP's ``{"src": [...], "tgt": [...], "context": {...}}`` record): the user turns are
``src``, the assistant turns ``tgt``; a leading system message is ``context["system"]``, so it reaches the
template only where the template names ``system`` (``{{system | default('...')}}``). Labels: the bot part of
every kept round carries loss, the system and user parts none.

Truncation (``max_length=N``; ``src_length=M``, default ``N``) re-expresses PaddleNLP's
``llm/utils/data.py:tokenize_rounds_example`` (not shipped in the wheel; counted against it in README):
the system is never cut and must be shorter than ``max_length`` (PaddleNLP asserts; here a rejection);
rounds are taken from the last backwards while they fit in ``max_length - len(system)``; the round that does
not fit is dropped with every earlier one, except the last round, which is cut instead: its user part to
``src_length - len(system)`` ids and its bot part to what is left (Python slice semantics, as PaddleNLP).

Not expressible (``RenderRejected``): tools offered, tool calls, tool results, reasoning, a system message that is not first
or that the template has no ``system`` slot for, turns not alternating user/assistant from a user turn.
An HF-style ``{"chat_template": "..."}`` file is refused: PaddleNLP 2.8.1 fails on it (see README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConversationError, InputError, RenderRejected, TemplateError
from harness.renderers._common import check_file_size, locate_spans, sha256_text
from harness.renderers.base import Answer, Encoded, TrainRenderer

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.tokenizer import Tokenizer

FILE = "chat_template.json"
FIELDS = ("conversation", "system", "query")


def template_path(arg: str, spec: str) -> Path:
    """``arg`` itself, or ``arg/chat_template.json`` for a directory; InputError naming what is missing."""
    path = Path(arg).expanduser()
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise InputError(f"spec={spec!r}: {str(path)!r}: no such file; pass a PaddleNLP chat_template.json "
                         f"(or a model dir holding one), e.g. paddlenlp:fixtures/paddlenlp/qwen_chat_template.json")
    return path


def read_config(path: Path, spec: str) -> dict[str, Any]:
    """The json object, refused as PaddleNLP 2.8.1's ``ChatTemplate.from_file`` would fail on it."""
    check_file_size(path, f"spec={spec!r}: file")
    where = f"spec={spec!r}: {str(path)!r}"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc}); a PaddleNLP chat_template.json is an object like "
                         '{"system": "...", "conversation": ["...{{user}}...", "...{{bot}}..."], "query": "..."}') from None
    if not isinstance(config, dict):
        raise InputError(f"{where}: the JSON is a {type(config).__name__}, not an object; PaddleNLP reads "
                         '{"system", "conversation", "query"} from it')
    if "chat_template" in config:
        raise InputError(f"{where}: holds an HF-style \"chat_template\" string; PaddleNLP 2.8.1's ChatTemplate."
                         "from_file fails on it (unexpected keyword 'chat_template'), so no training run uses it; "
                         "check that Jinja template with --train jinja:PATH instead")
    unknown = sorted(set(config) - set(FIELDS))
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; PaddleNLP's ChatTemplate takes "
                         f"only {', '.join(FIELDS)} (from_dict fails on any other)")
    conversation = config.get("conversation")
    if conversation is None:
        raise InputError(f"{where}: no \"conversation\" field; PaddleNLP's training needs "
                         '"conversation": ["<user part with {{user}}>", "<bot part with {{bot}}>"]')
    if not (isinstance(conversation, list) and len(conversation) == 2 and all(isinstance(c, str) for c in conversation)):
        raise InputError(f"{where}: \"conversation\" must be a list of two strings [user_template, bot_template] "
                         f"(PaddleNLP unpacks it as a pair); got {json.dumps(conversation)[:120]}")
    for key in ("system", "query"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise InputError(f"{where}: \"{key}\" must be a string (a Jinja template); got {json.dumps(config[key])[:80]}")
    return config


def _variables(sources: list[str], env: Any) -> set[str]:
    from jinja2 import meta

    return set().union(*(meta.find_undeclared_variables(env.parse(s)) for s in sources))


def keep_lengths(system: int, rounds: list[tuple[int, int]], max_length: int | None,
                 src_length: int | None) -> list[tuple[int, int, int]]:
    """``(round, user ids kept, bot ids kept)`` as ``tokenize_rounds_example`` truncates, in round order."""
    if max_length is None:
        return [(i, u, b) for i, (u, b) in enumerate(rounds)]
    if system >= max_length:
        raise RenderRejected("train", f"the system part is {system} tokens, not shorter than max_length={max_length}; "
                                      "PaddleNLP asserts len(system_ids) < max_length and stops")
    budget = max_length - system
    src = max_length if src_length is None else src_length
    kept: list[tuple[int, int, int]] = []
    total = 0
    for index in range(len(rounds) - 1, -1, -1):
        user, bot = rounds[index]
        if total + user + bot > budget:
            if index < len(rounds) - 1:
                break
            user = len(range(user)[: src - system])
            bot = len(range(bot)[: budget - user])
            kept.append((index, user, bot))
            break
        kept.append((index, user, bot))
        total += user + bot
    return kept[::-1]


class PaddleNLPRenderer(TrainRenderer):
    """PaddleNLP's SFT encoding of a conversation from a ``chat_template.json`` (see the module docstring)."""


    def __init__(self, spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> None:
        from harness._paddlenlp_real import load

        self.spec, self.tokenizer = spec, tokenizer
        self.real = load()
        self.path = template_path(arg, spec)
        self.config = read_config(self.path, spec)
        self.max_length: int | None = options.get("max_length")
        self.src_length: int | None = options.get("src_length")
        self.template = self.real.ChatTemplate.from_dict(dict(self.config))
        sources = [s for s in (self.config.get("system"), *self.config["conversation"]) if s]
        try:
            for source in sources + ([self.config["query"]] if self.config.get("query") else []):
                self.template._compile_jinja_template(source)
        except Exception as exc:  # jinja2.TemplateSyntaxError and friends
            raise TemplateError(f"spec={spec!r}: {str(self.path)!r}: a template does not compile as Jinja "
                                f"({type(exc).__name__}: {exc}); fix the chat_template.json") from None
        env = self.template._compile_jinja_template.__wrapped__("").environment
        self.system_slot = "system" in _variables(sources, env)
        self._log: list[tuple[str, list[int], list[tuple[int, int]]]] = []
        renderer = self

        class _Tokenizer(self.real.ChatTemplateMixin):  # PaddleNLP's mixin over the harness tokenizer
            def encode(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
                assert add_special_tokens is False, "PaddleNLP encodes chat parts without special tokens"
                ids, offsets = renderer.tokenizer.encode_offsets(text)
                renderer._log.append((text, list(ids), list(offsets)))
                return {"input_ids": list(ids)}

        self.paddle = _Tokenizer()
        self.paddle.chat_template = self.template

    @property
    def stop_ids(self) -> frozenset[int]:
        """Special ids the bot part appends after the answer (``{{bot}}<|im_end|>`` → ``<|im_end|>``)."""
        bot = self.config["conversation"][1]
        suffix = self.template._compile_jinja_template(bot).render(bot="\x00", user="", index=0).split("\x00")[-1]
        special = set(getattr(self.tokenizer, "added_tokens", {}).values())
        return frozenset(i for i in self.tokenizer.encode(suffix) if i in special)

    def record(self, conv: "Conversation") -> tuple[dict[str, Any], list[int], list[int]]:
        """PaddleNLP's ``{"src", "tgt", "context"}`` record of ``conv`` and the message index of each src/tgt."""
        messages = list(conv.messages)
        context: dict[str, Any] = {}
        if conv.tools:
            raise RenderRejected("train", "the conversation offers tools; a PaddleNLP chat_template.json has no slot for "
                                          "tool definitions")
        if messages and messages[0].role == "system":
            if not self.system_slot:
                raise RenderRejected("train", "the chat_template.json has no {{system}} slot, so a record cannot carry "
                                              "this conversation's system message (its system text is fixed)")
            context["system"] = messages[0].content or ""
        start = 1 if "system" in context else 0
        src: list[str] = []
        tgt: list[str] = []
        users: list[int] = []
        bots: list[int] = []
        for i, m in enumerate(messages[start:], start):
            if m.tool_calls or m.role == "tool":
                raise RenderRejected("train", f"message {i} has tool calls or a tool result; a PaddleNLP chat_template"
                                              ".json has only user and bot parts")
            if m.reasoning:
                raise RenderRejected("train", f"message {i} has reasoning; PaddleNLP's chat_template.json has no slot for it")
            if m.role == "system":
                raise RenderRejected("train", f"message {i} is a system message that is not first; PaddleNLP has one "
                                              "system part, before every round")
            want = "user" if len(src) == len(tgt) else "assistant"
            if m.role != want:
                raise RenderRejected("train", f"message {i} is {m.role!r} where PaddleNLP's src/tgt rounds need "
                                              f"{want!r} (turns must alternate user/assistant, starting with user)")
            (src if want == "user" else tgt).append(m.content or "")
            (users if want == "user" else bots).append(i)
        return {"src": src, "tgt": tgt, "context": context}, users, bots

    def encode_chat_inputs(self, record: dict[str, Any]) -> dict[str, Any]:
        """PaddleNLP's ``encode_chat_inputs`` as ``tokenize_rounds_example`` calls it (context + is_training)."""
        context = dict(record["context"], is_training=True)
        self._log.clear()
        try:
            return self.paddle.encode_chat_inputs([list(p) for p in zip(record["src"], record["tgt"])],
                                                  context_data=context)
        except Exception as exc:  # raise_exception() in a template, an undefined filter...
            raise RenderRejected("train", f"PaddleNLP's chat template fails on it: {type(exc).__name__}: {exc}") from None

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> Encoded:
        if not conv.messages or conv.messages[-1].role != "assistant":
            raise ConversationError("a training conversation must end with an assistant message; "
                                    "generate with end_with_assistant=True")
        record, users, bots = self.record(conv)
        result = self.encode_chat_inputs(record)
        pieces = list(self._log)
        system = pieces.pop(0) if "system" in result else ("", [], [])
        rounds = [tuple(len(ids) for ids in pair) for pair in result["conversations"]]
        kept = keep_lengths(len(system[1]), rounds, self.max_length, self.src_length)  # type: ignore[arg-type]
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        labels: list[bool] = []
        parts: list[str] = []
        answers: list[Answer] = []
        kept_messages = [0] if users and users[0] == 1 else []
        pos = 0

        def put(piece: tuple[str, list[int], list[tuple[int, int]]], use: int, trained: bool) -> None:
            nonlocal pos
            text, pids, offs = piece
            cut = len(text) if use == len(pids) else (offs[use - 1][1] if use else 0)
            ids.extend(pids[:use])
            offsets.extend((a + pos, b + pos) for a, b in offs[:use])
            labels.extend([trained] * use)
            parts.append(text[:cut])
            pos += cut

        put(system, len(system[1]), False)
        for index, user_keep, bot_keep in kept:
            put(pieces[2 * index], user_keep, False)
            kept_messages += [users[index]] if user_keep else []
            start, char_start = len(ids), pos
            put(pieces[2 * index + 1], bot_keep, True)
            if bot_keep:
                kept_messages.append(bots[index])
                answers.append(Answer(bots[index], start, len(ids), char_start))
        text = "".join(parts)
        extra: dict[str, Any] = {"encoding": "segments", "record": record}
        if self.max_length is not None:
            extra["kept_messages"] = tuple(kept_messages)
        return Encoded(ids=tuple(ids), text=text, spans=locate_spans(text, conv, offsets), labels=tuple(labels),
                       answers=tuple(answers), offsets=tuple(offsets), segments=tuple(parts), extra=extra)

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> str:
        """The parts PaddleNLP encodes for ``conv`` (ending with a bot part), joined, untruncated."""
        if conv.messages and conv.messages[-1].role != "assistant":
            raise RenderRejected("train", "PaddleNLP's training renders whole user/bot rounds only")
        record, _, _ = self.record(conv)
        self.encode_chat_inputs(record)
        return "".join(text for text, _, _ in self._log)

    def describe(self) -> dict[str, Any]:
        return {"kind": "paddlenlp", "spec": self.spec, "side": self.side, "paddlenlp": self.real.version,
                "chat_template_json": str(self.path), "sha256": sha256_text(self.path.read_text(encoding="utf-8")),
                "system_slot": self.system_slot, "max_length": self.max_length, "src_length": self.src_length,
                "stop_ids": sorted(self.stop_ids), "encode": "segments"}
