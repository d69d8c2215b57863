"""``llamafactory:NAME`` / ``llamafactory:train.yaml`` — training ids exactly as LLaMA-Factory 0.9.5 builds them.

The real LLaMA-Factory code does the work: ``get_template_and_fix_tokenizer`` on a private copy of the
tokenizer (it may replace the eos and add stop words as tokens; the harness tokenizer is never mutated),
then ``SupervisedDatasetProcessor._encode_data_example`` (which calls ``template.encode_multiturn``: every
slot encoded separately with ``add_special_tokens=False``) gives ``input_ids`` and ``labels``. The harness
records each slot the template encodes, so the rendering text, char offsets and answer positions come
from the same pieces; ids and labels are always LLaMA-Factory's own (offsets are approximate only if a
re-encoded slot ever disagrees, counted in ``extra["approximate_offsets"]``).

Dataset form (what a ShareGPT dataset stores, as LLaMA-Factory's converters align it):
  * a leading system message → the ``system`` column (``system or default_system``: empty means default);
  * user → ``user``; assistant → ``assistant``; an assistant turn with tool calls → a ``function`` turn whose
    content is the JSON of the call, ``{"name", "arguments": {...}}``, or a list of them for parallel calls;
    text beside the calls is stored before them as ``text + "\\n" + <tool_call>JSON</tool_call>`` (the
    template's ``tool_call_words``: ``FunctionFormatter`` keeps text around that block, as it sits in the
    model's raw output);
  * consecutive tool results → one ``observation`` turn, joined with ``"\\n</tool_response>\\n<tool_response>\\n"``
    (LLaMA-Factory's own OpenAI converter does this);
  * tools → the ``tools`` column: a JSON string of the function objects (``[{"name", "description", "parameters"}]``);
  * ``Message.reasoning`` (not None) → the content prefixed with the template's thought words,
    ``<think>\\n{reasoning}\\n</think>\\n\\n{content}`` — how reasoning datasets for LLaMA-Factory store it;
    ``ReasoningTemplate`` then strips or keeps it (``enable_thinking``) and adds empty thoughts as it does.
Shapes LLaMA-Factory drops as invalid (turns not alternating user/observation then assistant/function, e.g.
two user messages in a row, or a conversation opening with an assistant) raise ``RenderRejected``.

Spec options (also read from a train.yaml, where spec options win): ``default_system``, ``enable_thinking``,
``preserve_thinking``, ``tool_format``, ``train_on_prompt``, ``mask_history``, ``cutoff_len``. Truncation is
LLaMA-Factory's (``infer_seqlen`` per turn; with ``mask_history`` the last turns first). ``llamafactory:NAME``
does not truncate unless ``cutoff_len`` is given; a train.yaml without ``cutoff_len`` gets LLaMA-Factory's
default 2048. With ``mask_history`` only the last answer is trained, so only it is an ``Answer``.
Known limit: ``efficient_eos`` templates train the eos of a non-final answer as the *label* of the next
prompt's first id (no eos id in the inputs); ``extra["label_ids"]`` keeps LLaMA-Factory's raw labels.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from harness.errors import ConversationError, InputError, RenderRejected, SpecError
from harness.renderers._common import locate_spans
from harness.renderers.base import Answer, Encoded

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.tokenizer import Tokenizer

OBSERVATION_JOIN = "\n</tool_response>\n<tool_response>\n"
YAML_KEYS = ("template", "default_system", "cutoff_len", "enable_thinking", "preserve_thinking", "tool_format",
             "train_on_prompt", "mask_history")
OPTIONS = YAML_KEYS[1:] + ("tokenize",)
_LOCK = threading.Lock()


def import_llamafactory() -> Any:
    """``llamafactory.data.template`` (lazily; ~4 s the first time). InputError with the install line if missing."""
    from harness._lf_stub import prepare

    prepare()
    try:
        import llamafactory
        import llamafactory.data.processor.supervised  # noqa: F401
        import llamafactory.data.template as template
    except ImportError as exc:
        raise InputError(f"llamafactory cannot be imported ({exc}); install it with `pip install torch==2.13.0` then "
                         "`pip install --no-deps -r requirements-llamafactory.txt`") from None
    template.VERSION = llamafactory.__version__
    return template


def known_templates() -> list[str]:
    return sorted(import_llamafactory().TEMPLATES)


def _options(spec: str, raw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(OPTIONS))
    if unknown:
        raise SpecError(f"spec={spec!r}: unknown option(s) {', '.join(unknown)}; LLaMA-Factory options are "
                        f"{', '.join(OPTIONS)}")
    out = dict(raw)
    for key in ("enable_thinking", "preserve_thinking", "train_on_prompt", "mask_history"):
        if key in out and not isinstance(out[key], bool):
            raise SpecError(f"spec={spec!r}: {key}={out[key]!r} must be true or false")
    if out.get("cutoff_len") is not None and (not isinstance(out["cutoff_len"], int) or out["cutoff_len"] <= 0):
        raise SpecError(f"spec={spec!r}: cutoff_len={out['cutoff_len']!r} must be a positive integer")
    if out.get("tokenize", "harness") not in ("harness", "hf"):
        raise SpecError(f"spec={spec!r}: tokenize={out['tokenize']!r} must be 'harness' (cached ids, equal to "
                        "AutoTokenizer's) or 'hf' (every slot through the transformers tokenizer)")
    if out.get("default_system") is not None:
        out["default_system"] = str(out["default_system"])
    if out.get("tool_format") is not None:
        from llamafactory.data.tool_utils import TOOLS

        if out["tool_format"] not in TOOLS:
            raise SpecError(f"spec={spec!r}: tool_format={out['tool_format']!r} is not a LLaMA-Factory tool format; "
                            f"use one of {', '.join(TOOLS)}")
    if out.get("mask_history") and out.get("train_on_prompt"):
        raise SpecError(f"spec={spec!r}: mask_history and train_on_prompt together are refused by LLaMA-Factory "
                        "(`mask_history` is incompatible with `train_on_prompt`); drop one")
    return out


def read_yaml(path: Path, spec: str) -> dict[str, Any]:
    """The training keys of a LLaMA-Factory train.yaml; InputError naming the file on any problem."""
    import yaml

    if not path.is_file():
        raise InputError(f"spec={spec!r}: {str(path)!r}: no such file; pass the LLaMA-Factory training config "
                         "(e.g. examples/train_lora/qwen2_5_lora_sft.yaml) or a template name like llamafactory:qwen")
    if path.stat().st_size > 1 << 20:
        raise InputError(f"spec={spec!r}: {str(path)!r} is {path.stat().st_size:,} bytes; a LLaMA-Factory train.yaml "
                         "is a few lines of `key: value` (limit 1 MiB): pass the training config itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError, RecursionError) as exc:
        raise InputError(f"spec={spec!r}: {str(path)!r} is not valid YAML ({(str(exc).splitlines() or [type(exc).__name__])[0]}); fix the file "
                         "(LLaMA-Factory reads it with the same parser)") from None
    if not isinstance(data, dict):
        raise InputError(f"spec={spec!r}: {str(path)!r} holds {type(data).__name__}, not a mapping of training "
                         "arguments; a train.yaml is `key: value` lines (template: qwen, cutoff_len: 2048, ...)")
    from harness.options import LLAMAFACTORY, Option, check_value

    table = {"template": Option("a LLaMA-Factory template name, e.g. qwen", lambda v: isinstance(v, str) and bool(v)),
             **LLAMAFACTORY}
    for key in YAML_KEYS:
        if data.get(key) is not None:
            check_value(f"spec={spec!r}: {str(path)!r}", key, data[key], table)
    return data


def is_yaml(arg: str) -> bool:
    return arg.endswith((".yaml", ".yml")) or "/" in arg or Path(arg).is_file()


def _trained(label: int, token: int) -> bool:
    """Whether the input id carries loss (an efficient_eos eos label on a prompt id does not count)."""
    return label == token


class _CachedEncode:
    """The private transformers tokenizer, except that plain ``encode`` goes through the harness tokenizer."""

    def __init__(self, hf: Any, tokenizer: "Tokenizer") -> None:
        self._hf, self._encode = hf, tokenizer.encode

    def encode(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> list[int]:
        if add_special_tokens or kwargs:
            return self._hf.encode(text, add_special_tokens=add_special_tokens, **kwargs)
        return self._encode(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hf, name)


class LlamaFactoryRenderer:
    """Training side: LLaMA-Factory's supervised encoding of whole conversations."""

    side = "train"
    encode_mode = "segments"  # slot-wise: the segments check applies

    def __init__(self, spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> None:
        self.yaml_path: Path | None = Path(arg).expanduser() if is_yaml(arg) else None
        self.yaml: dict[str, Any] = read_yaml(self.yaml_path, spec) if self.yaml_path else {}  # before the slow import
        lf = import_llamafactory()
        self.spec, self.tokenizer, self._lf = spec, tokenizer, lf
        if self.yaml_path is not None:
            raw = {k: self.yaml[k] for k in YAML_KEYS if self.yaml.get(k) is not None}
            name = raw.pop("template", None)
            raw.setdefault("cutoff_len", 2048)
            raw.update(options)
            where = f" (from {self.yaml_path})"
        else:
            name, raw, where = arg, dict(options), ""
        self.options = _options(spec, raw)
        if name is not None and name not in lf.TEMPLATES:
            close = [t for t in sorted(lf.TEMPLATES) if t.startswith(str(name)[:3])][:8]
            raise InputError(f"template={name!r}{where}: unknown LLaMA-Factory {lf.VERSION} template; known: "
                             f"{', '.join(close or sorted(lf.TEMPLATES)[:8])}, ... ({len(lf.TEMPLATES)}); "
                             "see llamafactory.data.template.TEMPLATES")
        if name is None and not tokenizer.chat_template:
            raise InputError(f"spec={spec!r}{where}: no `template` and the model has no chat template; "
                             "set `template:` in the YAML")
        self.template_name = name or "(parsed from the tokenizer's chat template)"
        self.hf = copy.deepcopy(tokenizer.hf)
        before = self._token_state(self.hf)
        self.data_args = SimpleNamespace(
            template=name, train_on_prompt=bool(self.options.get("train_on_prompt")),
            mask_history=bool(self.options.get("mask_history")), cutoff_len=self.options.get("cutoff_len") or 10**9,
            tool_format=self.options.get("tool_format"), default_system=self.options.get("default_system"),
            enable_thinking=self.options.get("enable_thinking", True),
            preserve_thinking=bool(self.options.get("preserve_thinking")))
        self.template = self._fixed_template(lf)
        after = self._token_state(self.hf)
        self.changes = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
        self.added_tokens = sorted(set(after["added"]) - set(before["added"]))
        self.changes.pop("added", None)
        if self.added_tokens:
            self.changes["added_tokens"] = self.added_tokens
        from llamafactory.data.processor.supervised import SupervisedDatasetProcessor

        #: "harness": LLaMA-Factory's code runs unchanged, but its ``tokenizer.encode(slot, add_special_tokens=False)``
        #: calls are answered by the harness tokenizer (ids proven equal to AutoTokenizer's at load, audited, cached;
        #: ~3x faster). "hf" (or any set-up that added tokens) sends every call to the private transformers copy.
        self.tokenize = "hf" if self.added_tokens else self.options.get("tokenize", "harness")
        self.lf_tokenizer = self.hf if self.tokenize == "hf" else _CachedEncode(self.hf, tokenizer)
        self.processor = SupervisedDatasetProcessor(template=self.template, tokenizer=self.lf_tokenizer, processor=None,
                                                    data_args=self.data_args)
        self._log: list[tuple[list[Any], list[int]]] = []
        self._pairs: list[tuple[list[int], list[int]]] = []
        self._install_recorders()
        self._ignore = -100
        self.approximate = 0

    # -- set-up -------------------------------------------------------------------------------------------
    @staticmethod
    def _token_state(hf: Any) -> dict[str, Any]:
        return {"eos_token": hf.eos_token, "eos_token_id": hf.eos_token_id, "pad_token": hf.pad_token,
                "added": sorted(str(t) for t in hf.get_added_vocab()), "vocab_size": len(hf)}

    def _fixed_template(self, lf: Any) -> Any:
        """The real ``get_template_and_fix_tokenizer`` on a private copy of the registered template."""
        name = self.data_args.template
        with _LOCK:
            if name is None:
                return lf.get_template_and_fix_tokenizer(self.hf, self.data_args)
            original = lf.TEMPLATES[name]
            lf.TEMPLATES[name] = copy.deepcopy(original)
            try:
                return lf.get_template_and_fix_tokenizer(self.hf, self.data_args)
            except ValueError as exc:
                raise SpecError(f"spec={self.spec!r}: LLaMA-Factory refuses this set-up: {exc}") from None
            finally:
                lf.TEMPLATES[name] = original

    def _install_recorders(self) -> None:
        """Record each message's slot elements and the (prompt, response) pairs as LLaMA-Factory makes them."""
        template, cls = self.template, type(self.template)
        log, pairs = self._log, self._pairs

        def convert(tokenizer: Any, elements: Any) -> list[int]:
            ids = cls._convert_elements_to_ids(template, tokenizer, elements)
            log.append((list(elements), list(ids)))
            return ids

        def multiturn(*args: Any, **kwargs: Any) -> Any:
            out = cls.encode_multiturn(template, *args, **kwargs)
            pairs[:] = [(list(a), list(b)) for a, b in out]
            return out

        template._convert_elements_to_ids = convert
        template.encode_multiturn = multiturn

    # -- the dataset form ----------------------------------------------------------------------------------
    def dataset(self, conv: "Conversation", *, complete: bool = True) -> tuple[str, str, list[dict[str, str]], list[int]]:
        """``(system, tools JSON, aligned messages, harness index of each)``; RenderRejected for shapes LF drops."""
        msgs = list(conv.messages)
        offset = 0
        system = ""
        if msgs and msgs[0].role == "system":
            system, msgs, offset = msgs[0].content or "", msgs[1:], 1
        tools = json.dumps([t.to_openai()["function"] for t in conv.tools], ensure_ascii=False) if conv.tools else ""
        aligned: list[dict[str, str]] = []
        index: list[int] = []
        i = 0
        while i < len(msgs):
            m = msgs[i]
            if m.role == "tool":
                j = i
                while j < len(msgs) and msgs[j].role == "tool":
                    j += 1
                aligned.append({"role": "observation",
                                "content": OBSERVATION_JOIN.join(x.content or "" for x in msgs[i:j])})
                index.append(i + offset)
                i = j
                continue
            if m.role == "assistant":
                aligned.append(self._assistant(m))
            else:
                aligned.append({"role": "user", "content": m.content or ""})
            index.append(i + offset)
            i += 1
        accept = (("user", "observation"), ("assistant", "function"))
        for t, message in enumerate(aligned):
            if message["role"] not in accept[t % 2]:
                what = "an assistant message opens the conversation" if t == 0 else \
                    f"messages[{index[t]}] ({message['role']}) follows a {aligned[t - 1]['role']} turn"
                raise RenderRejected("train", f"LLaMA-Factory drops this example as invalid: {what}; its turns must "
                                              "alternate user/observation then assistant/function")
        if complete and len(aligned) % 2:
            raise RenderRejected("train", "LLaMA-Factory drops an example with an odd number of turns "
                                          "(it must end with an assistant answer)")
        return system, tools, aligned, index

    def _assistant(self, m: "Message") -> dict[str, str]:
        thought = ""
        if m.reasoning is not None:
            words = self.template.thought_words
            thought = words[0] + m.reasoning + words[1]
        if not m.tool_calls:
            return {"role": "assistant", "content": thought + (m.content or "")}
        calls = [{"name": c.name, "arguments": c.to_openai("dataset")["function"]["arguments"]} for c in m.tool_calls]
        payload = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
        if m.content:
            start, end = self.template.tool_call_words
            return {"role": "function", "content": thought + m.content + "\n" + start + payload + end}
        return {"role": "function", "content": thought + payload}

    # -- rendering ------------------------------------------------------------------------------------------
    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset(i for i in self.template.get_stop_token_ids(self.hf) if i is not None)

    def encode_lf(self, conv: "Conversation") -> tuple[list[int], list[int]]:
        """LLaMA-Factory's own ``(input_ids, labels)`` for ``conv`` (the supervised processor, unchanged)."""
        system, tools, aligned, _ = self.dataset(conv)
        return self._process(system, tools, aligned)

    def _process(self, system: str, tools: str, aligned: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        self._log.clear()
        try:
            return self.processor._encode_data_example(aligned[:-1], aligned[-1:], system, tools, [], [], [])
        except (RuntimeError, ValueError, KeyError) as exc:  # e.g. a tool format that cannot express the call
            raise RenderRejected("train", f"LLaMA-Factory cannot encode it: {exc}") from None

    def _piece_text(self, elem: Any) -> str:
        if isinstance(elem, str):
            return elem
        if isinstance(elem, dict):
            return str(elem.get("token"))
        if "bos_token" in elem and self.hf.bos_token_id is not None:
            return self.hf.bos_token
        if "eos_token" in elem and self.hf.eos_token_id is not None:
            return self.hf.eos_token
        return ""

    def _message_pieces(self, elements: list[Any], ids: list[int]) -> list[tuple[str, list[int], list[tuple[int, int]]]]:
        """Each slot element as (text, ids, offsets within text); ids checked against LLaMA-Factory's."""
        out = []
        for elem in elements:
            text = self._piece_text(elem)
            if isinstance(elem, str):
                if not elem:
                    continue
                pid, off = self._encode_offsets(elem)
            elif isinstance(elem, dict):
                pid, off = [self.hf.convert_tokens_to_ids(text)], [(0, len(text))]
            elif text:
                pid, off = [self.hf.convert_tokens_to_ids(text)], [(0, len(text))]
            else:
                continue
            out.append((text, pid, off))
        if [i for _, p, _ in out for i in p] != ids:
            self.approximate += 1
            return self._approximate(ids)
        return out

    def _encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        if not self.added_tokens:
            return self.tokenizer.encode_offsets(text)
        enc = self.hf(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _approximate(self, ids: list[int]) -> list[tuple[str, list[int], list[tuple[int, int]]]]:
        text, offsets = "", []
        for i in ids:
            piece = self.hf.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            offsets.append((len(text), len(text) + len(piece)))
            text += piece
        return [(text, list(ids), offsets)] if ids else []

    def _thought_pieces(self) -> tuple[list[int], list[tuple[str, list[int], list[tuple[int, int]]]]]:
        text = self.template.add_thought()
        ids = self.template.get_thought_word_ids(self.lf_tokenizer)
        return ids, self._message_pieces([text], ids)

    def _slots(self, n: int) -> list[list[tuple[str, list[int], list[tuple[int, int]]]]]:
        """Pieces of each LF message's final ids (after ReasoningTemplate added empty thoughts)."""
        per_message = [self._message_pieces(e, ids) for e, ids in self._log[-n:]]
        plain = [ids for _, ids in self._log[-n:]]
        final = [ids for pair in self._pairs for ids in pair]
        thought = None
        for t, ids in enumerate(final):
            if ids == plain[t]:
                continue
            thought = thought or self._thought_pieces()
            tid, tpieces = thought
            if ids == plain[t] + tid:
                per_message[t] = per_message[t] + tpieces
            elif ids == tid + plain[t]:
                per_message[t] = tpieces + per_message[t]
            else:
                self.approximate += 1
                per_message[t] = self._approximate(ids)
        return per_message

    def render(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> Encoded:
        if not conv.messages or conv.messages[-1].role != "assistant":
            raise ConversationError("a training conversation must end with an assistant message; "
                                    "generate with end_with_assistant=True")
        system, tools, aligned, index = self.dataset(conv)
        input_ids, raw_labels = self._process(system, tools, aligned)
        slots = self._slots(len(aligned))
        layout = self._layout([len(ids) for pair in self._pairs for ids in pair])
        text_parts: list[str] = []
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        answers: list[Answer] = []
        pos = 0
        for turn, (src_len, tgt_len) in layout:
            for which, keep in ((2 * turn, src_len), (2 * turn + 1, tgt_len)):
                if which % 2 and keep:
                    char_start = pos
                    answer_at = len(ids)
                taken = 0
                for text, pid, off in slots[which]:
                    if taken >= keep:
                        break
                    use = min(len(pid), keep - taken)
                    ids.extend(pid[:use])
                    offsets.extend((a + pos, b + pos) for a, b in off[:use])
                    cut = off[use - 1][1] if use < len(pid) else len(text)
                    text_parts.append(text[:cut])
                    pos += cut
                    taken += use
                if which % 2 and keep:
                    answers.append(Answer(index[which], answer_at, len(ids), char_start))
        if self.template.efficient_eos:
            eos = self.hf.eos_token or ""
            ids.append(self.hf.eos_token_id)
            offsets.append((pos, pos + len(eos)))
            text_parts.append(eos)
        if ids != list(input_ids):  # never expected: LLaMA-Factory's ids win, offsets become approximate
            self.approximate += 1
            (text0, ids, offsets), = self._approximate(list(input_ids)) or [("", [], [])]
            text_parts = [text0]
        labels = tuple(map(_trained, raw_labels, input_ids))
        if self.data_args.mask_history:
            answers = answers[-1:]
        full = "".join(text_parts)
        ends = [e for _, e in offsets]
        extra = {"encoding": "segments", "label_ids": tuple(raw_labels),
                 **_kept(layout, [len(ids) for pair in self._pairs for ids in pair], index, len(conv.messages))}
        return Encoded(ids=tuple(input_ids), text=full, spans=locate_spans(full, conv, offsets, ends), labels=labels,
                       answers=tuple(answers), offsets=tuple(offsets), segments=tuple(text_parts), extra=extra)

    def _layout(self, lengths: list[int]) -> list[tuple[int, tuple[int, int]]]:
        """(turn, (prompt ids kept, response ids kept)) in sequence order, as the supervised processor truncates."""
        from llamafactory.data.processor.processor_utils import infer_seqlen

        turns = list(range(len(lengths) // 2))
        cutoff = self.data_args.cutoff_len
        total = 1 if self.template.efficient_eos else 0
        if self.data_args.mask_history:
            turns = turns[::-1]
        kept = []
        for t in turns:
            if total >= cutoff:
                break
            src, tgt = infer_seqlen(lengths[2 * t], lengths[2 * t + 1], cutoff - total)
            total += src + tgt
            kept.append((t, (src, tgt)))
        return sorted(kept)

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = False) -> str:
        """The slot text of ``conv`` (any prefix; the user slot already holds the assistant header)."""
        system, tools, aligned, _ = self.dataset(conv, complete=False)
        self._log.clear()
        try:
            self.template._encode(self.lf_tokenizer, aligned, system, tools)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise RenderRejected("train", f"LLaMA-Factory cannot encode it: {exc}") from None
        return "".join(self._piece_text(e) for elements, _ in self._log for e in elements
                       if not (isinstance(e, str) and not e))

    def describe(self) -> dict[str, Any]:
        t = self.template
        out: dict[str, Any] = {
            "kind": "llamafactory", "spec": self.spec, "side": self.side, "template": self.template_name,
            "template_class": type(t).__name__, "llamafactory": self._lf.VERSION,
            "efficient_eos": t.efficient_eos, "replace_eos": t.replace_eos, "stop_words": list(t.stop_words),
            "default_system": t.default_system, "thought_words": list(t.thought_words),
            "tool_format": t.format_tools.tool_format or "default",
            "enable_thinking": getattr(t, "enable_thinking", None), "options": dict(sorted(self.options.items())),
            "tokenizer_changes": self.changes, "stop_ids": sorted(self.stop_ids), "encode": "segments",
            "tokenize": self.tokenize,
        }
        if self.yaml_path is not None:
            out["yaml"] = str(self.yaml_path)
            out["yaml_sha256"] = hashlib.sha256(self.yaml_path.read_bytes()).hexdigest()
            out["model_name_or_path"] = self.yaml.get("model_name_or_path")
        return out


def _kept(layout: list[tuple[int, tuple[int, int]]], lengths: list[int], index: list[int], n: int) -> dict[str, Any]:
    """``kept_messages`` (messages with ids left after ``infer_seqlen``; slot 0 holds the system message too) and
    ``cut_answers`` (answers cut short), only when the cut-off removed something."""
    kept: list[int] = []
    cut: list[int] = []
    full = True
    for turn, lens in layout:
        for which, keep in zip((2 * turn, 2 * turn + 1), lens):
            full = full and keep == lengths[which]
            if keep:
                start = 0 if which == 0 else index[which]
                kept.extend(range(start, index[which + 1] if which + 1 < len(index) else n))
            if which % 2 and 0 < keep < lengths[which]:
                cut.append(index[which])
    if full and len(layout) * 2 == len(lengths):
        return {}
    return {"kept_messages": tuple(kept), "cut_answers": tuple(cut)}


def export_jinja(spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The chat template LLaMA-Factory's export writes into tokenizer_config.json for this set-up.

    ``get_template_and_fix_tokenizer`` calls ``fix_jinja_template``: it writes ``_get_jinja_template`` only
    when the tokenizer has no chat template or the template sets ``replace_jinja_template``; otherwise the
    model's own template is kept. Option ``generated=true`` takes ``_get_jinja_template`` regardless.
    """
    generated = bool(options.pop("generated", False))
    train = LlamaFactoryRenderer(spec, tokenizer, arg, options)
    source = train.template._get_jinja_template(train.hf) if generated else train.hf.chat_template
    replaced = generated or source != tokenizer.chat_template
    info = {"llamafactory_template": train.template_name, "llamafactory": train._lf.VERSION,
            "jinja": "generated by _get_jinja_template" if replaced else "the model's own (kept by fix_jinja_template)",
            "tokenizer_changes": train.changes}
    if source is None:
        raise InputError(f"spec={spec!r}: LLaMA-Factory writes no chat template for this set-up")
    return source, info


def build_export_jinja(spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> Any:
    """``llamafactory-jinja:NAME|train.yaml`` — that exported template served as vLLM serves it (HFRenderer)."""
    from harness.renderers.hf import HFRenderer
    from harness.sandbox import ChatTemplate

    source, info = export_jinja(spec, tokenizer, arg, dict(options))

    class LlamaFactoryJinjaRenderer(HFRenderer):
        def describe(self) -> dict[str, Any]:
            return {**super().describe(), "kind": "llamafactory-jinja", **info}

    eos = info["tokenizer_changes"].get("eos_token", {}).get("after")  # the export saves the replaced eos
    return LlamaFactoryJinjaRenderer(spec=spec, tokenizer=tokenizer, extra_stops=(eos,) if eos else (),
                                     template=ChatTemplate(source, f"llamafactory:{info['llamafactory_template']}"))


def export_modelfile(spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The Ollama Modelfile LLaMA-Factory's export writes (``Template.get_ollama_modelfile``) for this set-up."""
    train = LlamaFactoryRenderer(spec, tokenizer, arg, options)
    text = train.template.get_ollama_modelfile(train.hf)
    return text, {"llamafactory_template": train.template_name, "llamafactory": train._lf.VERSION,
                  "tokenizer_changes": train.changes}


def build_export_modelfile(spec: str, tokenizer: "Tokenizer", arg: str, options: dict[str, Any]) -> Any:
    """``llamafactory-ollama:NAME|train.yaml`` — LLaMA-Factory's exported Modelfile as Ollama serves it.

    The Modelfile is parsed in memory (nothing is written); ``eog=``/``think=`` go to the Ollama renderer."""
    from harness.modelfile import parse_modelfile
    from harness.renderers.ollama import OllamaRenderer

    ollama_opts = {k: options.pop(k) for k in ("eog", "think", "add_bos") if k in options}
    text, info = export_modelfile(spec, tokenizer, arg, dict(options))
    modelfile = parse_modelfile(text, path=f"llamafactory:{info['llamafactory_template']}/Modelfile")

    class LlamaFactoryOllamaRenderer(OllamaRenderer):
        def describe(self) -> dict[str, Any]:
            return {**super().describe(), "kind": "llamafactory-ollama", "modelfile_text": text, **info}

    return LlamaFactoryOllamaRenderer(spec, tokenizer, modelfile, **ollama_opts)
