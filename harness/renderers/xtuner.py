"""``xtuner:NAME`` / ``xtuner:config.py`` — training ids exactly as XTuner 0.2.0 builds them.

XTuner's real code does the work (imported by harness/_xtuner_stub.py): ``template_map_fn`` puts
``PROMPT_TEMPLATE[NAME]`` around each turn (``SYSTEM`` before the first turn's ``INSTRUCTION`` when the turn
has a system; ``SUFFIX`` after each output; ``need_eos_token = not SUFFIX_AS_EOS``; ``sep = SEP``), then
``encode_fn`` encodes every turn piecewise with ``add_special_tokens=False``: bos (only before the first
turn and after a turn that appended eos; none for Qwen tokenizers), input (no loss), output+SUFFIX (loss),
eos when ``need_eos_token`` (loss), SEP (no loss); finally it cuts ids and labels to ``max_length``.
The harness rebuilds the same pieces to get the text, char offsets and answer positions; ids and labels are
always ``encode_fn``'s own (a disagreeing rebuild is counted in ``extra["approximate"]``).

Dataset form (``{"conversation": [{"system", "input", "output"}, ...]}``): a leading system message →
the first turn's ``system``; each user → ``input``; each assistant → ``output``. XTuner's format has no
tools, tool calls, tool results or reasoning, no system after the first message, and pairs one user with
one assistant: such conversations raise ``RenderRejected``. A conversation whose labels all fall past
``max_length`` is dropped by XTuner (``process_hf_dataset`` filters it): ``RenderRejected`` too.

``encode_fn`` picks the bos by ``tokenizer.__class__.__name__`` as transformers 4.48 (XTuner's pin) names
it: the harness hands it the tokenizer under that name (``Qwen2Tokenizer`` → ``Qwen2TokenizerFast``,
``TokenizersBackend`` → ``PreTrainedTokenizerFast``); ``encode`` calls go through the harness tokenizer.
"""

from __future__ import annotations

import copy
import hashlib
import string
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConversationError, InputError, RenderRejected
from harness.options import XTUNER, check_options
from harness.renderers._common import locate_spans
from harness.renderers.base import Answer, Encoded, TrainRenderer

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.tokenizer import Tokenizer

#: transformers 5 class name → the name transformers 4.48's AutoTokenizer gives the same tokenizer
_V4_NAMES = {"TokenizersBackend": "PreTrainedTokenizerFast"}
_SLOW_ONLY = ("ChatGLMTokenizer", "QWenTokenizer")  # remote-code tokenizers without a fast class


def xtuner_class_name(hf: Any) -> str:
    """The tokenizer class name ``get_bos_eos_token_ids`` would see under transformers 4.48."""
    name = type(hf).__name__
    if name in _V4_NAMES:
        return _V4_NAMES[name]
    return name if name.endswith("Fast") or name in _SLOW_ONLY else name + "Fast"


class _Encode:
    """The transformers tokenizer, renamed as XTuner sees it; plain ``encode`` goes through ``encode``."""

    def __init__(self, hf: Any, encode: Any) -> None:
        self._hf, self._encode = hf, encode

    def encode(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> list[int]:
        if add_special_tokens or kwargs:
            return list(self._hf.encode(text, add_special_tokens=add_special_tokens, **kwargs))
        return list(self._encode(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hf, name)


def xtuner_tokenizer(hf: Any, encode: Any = None) -> Any:
    """``hf`` wrapped under its transformers-4.48 class name; ``encode`` (default: hf's) answers plain encodes."""
    cls = type(xtuner_class_name(hf), (_Encode,), {})
    return cls(hf, encode or (lambda text: hf.encode(text, add_special_tokens=False)))


def _field_start(template: str, field: str, values: dict[str, Any]) -> int:
    """Char index where ``{field}`` lands in ``template.format(**values)`` (-1 if absent)."""
    pos = 0
    for literal, name, spec, conv in string.Formatter().parse(template):
        pos += len(literal)
        if name is None:
            continue
        if name == field:
            return pos
        pos += len(format(values[name], spec or ""))
    return -1


def _reject_tool(i: int, m: "Message") -> None:
    """XTuner's ``{"system", "input", "output"}`` turns carry no tool calls or tool results."""
    if m.role == "tool" or m.tool_calls:
        raise RenderRejected("train", f"messages[{i}] is a tool call or result; XTuner's conversation format has "
                                      "no tool messages")


class XTunerRenderer(TrainRenderer):
    """Training side: XTuner's ``template_map_fn`` + ``encode_fn`` on whole conversations."""

    encode_mode = "segments"  # each turn piece is encoded on its own: the segments check applies

    def __init__(self, spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> None:
        from harness._xtuner_stub import load

        self.spec, self.tokenizer = spec, tokenizer
        self.config = None
        check_options("xtuner", spec, options, XTUNER)
        if arg.endswith(".py") or "/" in arg:
            from harness.xtuner_config import read_config

            self.config = read_config(Path(arg).expanduser(), spec)
            name, length, where = self.config.prompt_template, self.config.max_length, \
                f" ({self.config.path} line {self.config.template_line})"
        else:
            name, length, where = arg, None, ""
        self.xt = load()
        if name not in self.xt.prompt_template:
            raise InputError(f"template={name!r}{where}: unknown XTuner {self.xt.version} prompt template; known: "
                             f"{', '.join(sorted(self.xt.prompt_template))} (xtuner.utils.PROMPT_TEMPLATE)")
        self.template_name = name
        self.template = self.xt.prompt_template[name]
        self.max_length: int | None = options.get("max_length", length)
        self.xt_tokenizer = xtuner_tokenizer(tokenizer.hf, tokenizer.encode)
        try:
            bos, eos = self.xt.get_bos_eos_token_ids(self.xt_tokenizer)
            if bos is None or eos is None or None in bos or None in eos:
                raise TypeError("bos or eos is None")
        except (AssertionError, TypeError) as exc:
            raise InputError(f"spec={spec!r}: XTuner's encode_fn cannot use this tokenizer "
                             f"({xtuner_class_name(tokenizer.hf)}: bos_token_id={tokenizer.hf.bos_token_id}, "
                             f"eos_token_id={tokenizer.hf.eos_token_id}; {exc}): get_bos_eos_token_ids needs both "
                             "(Qwen tokenizers excepted); use a model whose tokenizer sets them") from None
        self.bos_ids, self.eos_ids = list(bos), list(eos)
        self.need_eos = not self.template.get("SUFFIX_AS_EOS", False)
        self.approximate = 0

    # -- the dataset form ----------------------------------------------------------------------------------
    def dataset(self, conv: "Conversation", *, complete: bool = True) -> tuple[list[dict[str, str]], list[tuple[int | None, int, int | None]]]:
        """XTuner turns and, per turn, the message indices (system or None, user, assistant or None)."""
        if conv.tools:
            raise RenderRejected("train", "XTuner's conversation format has no tools (only system/input/output)")
        msgs = list(conv.messages)
        system_at = 0 if msgs and msgs[0].role == "system" else None
        turns: list[dict[str, str]] = []
        index: list[tuple[int | None, int, int | None]] = []
        i = 1 if system_at is not None else 0
        while i < len(msgs):
            m = msgs[i]
            if m.role == "system":
                raise RenderRejected("train", f"messages[{i}] is a system message after the first message; XTuner's "
                                              "format has a system only for the first turn")
            _reject_tool(i, m)
            if m.role != "user":
                raise RenderRejected("train", f"messages[{i}] ({m.role}) does not follow a user message; XTuner "
                                              "pairs each user input with one assistant output")
            if i + 1 >= len(msgs):
                if complete:
                    raise ConversationError("a training conversation must end with an assistant message; "
                                            "generate with end_with_assistant=True")
                first = not turns and system_at is not None
                turns.append({"system": msgs[0].content or "", "input": m.content or ""} if first
                             else {"input": m.content or ""})
                index.append((system_at if first else None, i, None))
                break
            a = msgs[i + 1]
            _reject_tool(i + 1, a)
            if a.role != "assistant":
                raise RenderRejected("train", f"messages[{i + 1}] ({a.role}) follows a user message; XTuner pairs "
                                              "each user input with one assistant output (no two users in a row)")
            if a.reasoning is not None:
                raise RenderRejected("train", f"messages[{i + 1}] has reasoning; XTuner's conversation format has "
                                              "no reasoning field")
            turn = {"input": m.content or "", "output": a.content or ""}
            if not turns and system_at is not None:
                turn = {"system": msgs[0].content or "", **turn}
            turns.append(turn)
            index.append((system_at if len(turns) == 1 else None, i, i + 1))
            i += 2
        if system_at is not None and msgs[0].content and "SYSTEM" not in self.template:
            raise RenderRejected("train", f"XTuner's {self.template_name} template has no SYSTEM: template_map_fn "
                                          "fails on a conversation with a system message")
        if system_at is not None and msgs[0].reasoning is not None:
            raise RenderRejected("train", "messages[0] has reasoning; XTuner's format has no reasoning field")
        return turns, index

    # -- XTuner's own code -----------------------------------------------------------------------------------
    def mapped(self, turns: list[dict[str, str]]) -> list[dict[str, Any]]:
        """``template_map_fn`` on a copy of the turns (the real function)."""
        return self.xt.template_map_fn({"conversation": copy.deepcopy(turns)}, self.template)["conversation"]

    def encode_xtuner(self, conv: "Conversation", tokenizer: Any = None) -> tuple[list[int], list[int]]:
        """XTuner's own ``(input_ids, labels)`` for ``conv``; ``tokenizer`` defaults to the harness-backed one."""
        turns, _ = self.dataset(conv)
        out = self.xt.encode_fn({"conversation": self.mapped(turns)}, tokenizer or self.xt_tokenizer,
                                self.max_length or sys.maxsize)
        return list(out["input_ids"]), list(out["labels"])

    @property
    def stop_ids(self) -> frozenset[int]:
        """What training ends an answer with: the eos it appends (``need_eos_token``), or ``SUFFIX`` as one token
        when ``SUFFIX_AS_EOS``; plus the template's ``STOP_WORDS`` that are single tokens."""
        ids: set[int] = set(self.eos_ids) if self.need_eos else set()
        suffix = self.template.get("SUFFIX")
        if suffix and not self.need_eos:
            sid = self.tokenizer.encode(suffix)
            if len(sid) == 1:
                ids.add(sid[0])
        for word in self.template.get("STOP_WORDS", ()) or ():
            wid = self.tokenizer.encode(word)
            if len(wid) == 1:
                ids.add(wid[0])
        return frozenset(ids)

    # -- rendering ------------------------------------------------------------------------------------------
    def _special(self, ids: list[int]) -> tuple[str, list[int], list[tuple[int, int]]]:
        text, offsets = "", []
        for i in ids:
            piece = str(self.tokenizer.hf.convert_ids_to_tokens(i))
            offsets.append((len(text), len(text) + len(piece)))
            text += piece
        return text, list(ids), offsets

    def _pieces(self, mapped: list[dict[str, Any]], turns: list[dict[str, str]]) -> list[tuple[str, str, int, dict[str, int]]]:
        """``(kind, text, turn, content char starts)`` in ``encode_fn``'s order; kinds bos/input/output/eos/sep."""
        out: list[tuple[str, str, int, dict[str, int]]] = []
        needs_bos = True
        for t, (turn, raw) in enumerate(zip(mapped, turns)):
            if needs_bos and self.bos_ids:
                out.append(("bos", "", t, {}))
            starts = {"system": 0} if "system" in raw else {}
            instruction_at = 0
            if raw.get("system"):
                system_text = self.template.SYSTEM.format(system=raw["system"])
                starts["system"] = _field_start(self.template.SYSTEM, "system", {"system": raw["system"]})
                instruction_at = len(system_text)
            starts["input"] = instruction_at + _field_start(self.template.INSTRUCTION, "input",
                                                            {"input": raw["input"], "round": t + 1})
            out.append(("input", turn["input"], t, starts))
            if "output" not in raw:
                break
            out.append(("output", turn["output"], t, {"output": 0}))
            needs_bos = turn["need_eos_token"]
            if needs_bos:
                out.append(("eos", "", t, {}))
            if turn["sep"]:
                out.append(("sep", turn["sep"], t, {}))
        return out

    def _layout(self, conv: "Conversation", *, complete: bool = True) -> dict[str, Any]:
        """The full (uncut) rebuild: text, ids, offsets, each piece's token range and each message's char range."""
        turns, index = self.dataset(conv, complete=complete)
        mapped = self.mapped(turns)
        text, ids, offsets, segments = "", [], [], []
        ranges: list[tuple[str, int, int, int]] = []  # kind, turn, token start, token end
        chars: dict[int, tuple[int, int]] = {}  # message -> its content's char range
        first_token: dict[int, int] = {}  # message -> the first token of the piece that holds it
        for kind, piece, t, starts in self._pieces(mapped, turns):
            if kind in ("bos", "eos"):
                ptext, pid, poff = self._special(self.bos_ids if kind == "bos" else self.eos_ids)
            else:
                ptext = piece
                pid, poff = self.tokenizer.encode_offsets(piece)
            base = len(text)
            sys_i, user_i, asst_i = index[t]
            for field, where in starts.items():
                message = {"system": sys_i, "input": user_i, "output": asst_i}[field]
                content = conv.messages[message].content or ""
                chars[message] = (base + where, base + where + len(content))
                first_token[message] = len(ids)
            ranges.append((kind, t, len(ids), len(ids) + len(pid)))
            ids.extend(pid)
            offsets.extend((a + base, b + base) for a, b in poff)
            text += ptext
            segments.append(ptext)
        return {"turns": turns, "index": index, "mapped": mapped, "text": text, "ids": ids, "offsets": offsets,
                "segments": segments, "ranges": ranges, "chars": chars,
                "first_token": first_token}

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> Encoded:
        if not conv.messages or conv.messages[-1].role != "assistant":
            raise ConversationError("a training conversation must end with an assistant message; "
                                    "generate with end_with_assistant=True")
        lay = self._layout(conv)
        out = self.xt.encode_fn({"conversation": lay["mapped"]}, self.xt_tokenizer, self.max_length or sys.maxsize)
        input_ids, raw_labels = list(out["input_ids"]), list(out["labels"])
        labels = tuple(lab == tok for lab, tok in zip(raw_labels, input_ids))
        if not any(lab >= 0 for lab in raw_labels):
            raise RenderRejected("train", f"XTuner drops this example: no label survives max_length={self.max_length} "
                                          "(process_hf_dataset filters examples without valid labels)")
        cut = len(input_ids)
        full_ids, offsets, text = lay["ids"], lay["offsets"], lay["text"]
        extra: dict[str, Any] = {"encoding": "segments", "label_ids": tuple(raw_labels)}
        if full_ids[:cut] != input_ids:  # never expected: XTuner's ids win, offsets become approximate
            self.approximate += 1
            extra["approximate"] = True
        truncated = len(full_ids) > cut
        offsets = offsets[:cut]
        end_char = offsets[-1][1] if offsets else 0
        text = text[:end_char] if truncated else text
        ends = [e for _, e in offsets]
        answers = []
        for kind, t, start, stop in lay["ranges"]:
            if kind != "output" or start >= cut:
                continue
            if self.need_eos:
                stop = next(e for k, tt, _, e in lay["ranges"] if k == "eos" and tt == t)
            message = lay["index"][t][2]
            answers.append(Answer(message, start, min(stop, cut), lay["chars"][message][0]))
        if truncated:
            kept = tuple(sorted(m for m, (c0, c1) in lay["chars"].items()
                                if (c0 < end_char if c1 > c0 else lay["first_token"][m] < cut)))
            extra["kept_messages"] = kept
        segments, pos = [], 0
        for seg in lay["segments"]:
            if pos >= len(text):
                break
            segments.append(seg[:len(text) - pos])
            pos += len(seg)
        return Encoded(ids=tuple(input_ids), text=text, spans=locate_spans(text, conv, offsets, ends), labels=labels,
                       answers=tuple(answers), offsets=tuple(offsets), segments=tuple(segments), extra=extra)

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> str:
        """The uncut piece text of ``conv`` (any prefix; a user turn's INSTRUCTION holds the assistant header)."""
        return self._layout(conv, complete=False)["text"]

    @property
    def template_stop_words(self) -> tuple[str, ...]:
        return tuple(self.template.get("STOP_WORDS", ()) or ())

    def describe(self) -> dict[str, Any]:
        t = self.template
        out: dict[str, Any] = {
            "kind": "xtuner", "spec": self.spec, "side": self.side, "template": self.template_name,
            "xtuner": self.xt.version, "SYSTEM": t.get("SYSTEM"), "INSTRUCTION": t.get("INSTRUCTION"),
            "SUFFIX": t.get("SUFFIX"), "SUFFIX_AS_EOS": bool(t.get("SUFFIX_AS_EOS", False)), "SEP": t.get("SEP", ""),
            "stop_words": list(t.get("STOP_WORDS", ()) or ()), "max_length": self.max_length,
            "tokenizer_class": xtuner_class_name(self.tokenizer.hf), "bos_ids": self.bos_ids, "eos_ids": self.eos_ids,
            "stop_ids": sorted(self.stop_ids), "encode": "segments",
        }
        if self.config is not None:
            out["config"] = str(self.config.path)
            out["config_sha256"] = hashlib.sha256(self.config.path.read_bytes()).hexdigest()
        return out
