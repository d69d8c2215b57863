"""``llamafactory:NAME`` / ``llamafactory:train.yaml`` — training ids exactly as LLaMA-Factory 0.9.5 builds them.

The real LLaMA-Factory code does the work: ``get_template_and_fix_tokenizer`` on a private copy of the
tokenizer (it may replace the eos and add stop words as tokens; the harness tokenizer is never mutated),
then ``SupervisedDatasetProcessor._encode_data_example`` (which calls ``template.encode_multiturn``: every
slot encoded separately with ``add_special_tokens=False``) gives ``input_ids`` and ``labels``. The harness
records each slot the template encodes, so the rendering text, char offsets and answer positions come
from the same pieces; ids and labels are always LLaMA-Factory's own (offsets are approximate only if a
re-encoded slot ever disagrees, counted in ``extra["approximate_offsets"]``).

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
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from harness.errors import ConversationError, InputError, RenderRejected
from harness.renderers._common import locate_spans
from harness.renderers.base import Answer, Encoded, TrainRenderer
from harness.renderers.llamafactory.config import YAML_KEYS, is_yaml, lf_options, read_yaml
from harness.renderers.llamafactory.dataset import to_dataset
from harness.renderers.llamafactory.patches import CachedEncode, fixed_template, install_recorders, token_state
from harness.renderers.llamafactory.upstream import import_llamafactory

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.tokenizer import Tokenizer


def _trained(label: int, token: int) -> bool:
    """Whether the input id carries loss (an efficient_eos eos label on a prompt id does not count)."""
    return label == token


class LlamaFactoryRenderer(TrainRenderer):
    """Training side: LLaMA-Factory's supervised encoding of whole conversations."""

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
        self.options = lf_options(spec, raw)
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
        before = token_state(self.hf)
        self.data_args = SimpleNamespace(
            template=name, train_on_prompt=bool(self.options.get("train_on_prompt")),
            mask_history=bool(self.options.get("mask_history")), cutoff_len=self.options.get("cutoff_len") or 10**9,
            tool_format=self.options.get("tool_format"), default_system=self.options.get("default_system"),
            enable_thinking=self.options.get("enable_thinking", True),
            preserve_thinking=bool(self.options.get("preserve_thinking")))
        self.template = fixed_template(lf, self.hf, self.data_args, spec)
        after = token_state(self.hf)
        self.changes = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
        self.added_tokens = tuple(sorted(set(after["added"]) - set(before["added"])))
        self.changes.pop("added", None)
        if self.added_tokens:
            self.changes["added_tokens"] = list(self.added_tokens)
        from llamafactory.data.processor.supervised import SupervisedDatasetProcessor

        #: "harness": LLaMA-Factory's code runs unchanged, but its ``tokenizer.encode(slot, add_special_tokens=False)``
        #: calls are answered by the harness tokenizer (ids proven equal to AutoTokenizer's at load, audited, cached;
        #: ~3x faster). "hf" (or any set-up that added tokens) sends every call to the private transformers copy.
        self.tokenize = "hf" if self.added_tokens else self.options.get("tokenize", "harness")
        self.lf_tokenizer = self.hf if self.tokenize == "hf" else CachedEncode(self.hf, tokenizer)
        self.processor = SupervisedDatasetProcessor(template=self.template, tokenizer=self.lf_tokenizer, processor=None,
                                                    data_args=self.data_args)
        self._log: list[tuple[list[Any], list[int]]] = []
        self._pairs: list[tuple[list[int], list[int]]] = []
        install_recorders(self.template, self._log, self._pairs)
        self.approximate = 0

    # -- the dataset form ----------------------------------------------------------------------------------
    def dataset(self, conv: "Conversation", *, complete: bool = True) -> tuple[str, str, list[dict[str, str]], list[int]]:
        """``(system, tools JSON, aligned messages, harness index of each)``; RenderRejected for shapes LF drops."""
        return to_dataset(self.template, conv, complete=complete)

    # -- rendering ------------------------------------------------------------------------------------------
    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset(i for i in self.template.get_stop_token_ids(self.hf) if i is not None)

    @property
    def template_stop_words(self) -> tuple[str, ...]:
        return tuple(self.template.stop_words)

    @property
    def replaced_eos(self) -> tuple[str, str] | None:
        eos = self.changes.get("eos_token")
        return (eos["before"], eos["after"]) if eos else None

    @property
    def efficient_eos(self) -> bool:
        return bool(self.template.efficient_eos)

    def decode_extra(self, token_id: int) -> str:
        return str(self.hf.decode([token_id], skip_special_tokens=False))

    def encode_lf(self, conv: "Conversation") -> tuple[list[int], list[int]]:
        """LLaMA-Factory's own ``(input_ids, labels)`` for ``conv`` (the supervised processor, unchanged): the
        reference tests hold :meth:`render`'s ids and layout against (tests/test_truncation.py)."""
        system, tools, aligned, _ = self.dataset(conv)
        return self._process(system, tools, aligned)

    def _process(self, system: str, tools: str, aligned: list[dict[str, str]]) -> tuple[list[int], list[int]]:
        self._log.clear()
        try:
            return self.processor._encode_data_example(aligned[:-1], aligned[-1:], system, tools, [], [], [])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # e.g. a tool format that cannot express
            # the call; TypeError: the default (ReAct) tool prompt joins `enum` values as strings, so a number enum
            # crashes LLaMA-Factory itself
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
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # TypeError: see _process
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
