"""``lmdeploy:path/chat_template.json`` — the prompt LMDeploy (0.18) builds from a ``--chat-template`` JSON file.

What the real engine does (``lmdeploy/model.py``, ``lmdeploy/serve``, ``lmdeploy/tokenizer.py``):

* ``ChatTemplateConfig.from_json`` loads the file; a missing ``model_name`` gets a random one, and a name
  that is not a built-in template is registered as ``BaseChatTemplate``; unknown keys raise ``TypeError``.
  A ``model_name`` with a dot (``qwen2.5``) makes mmengine's Registry read a scope and the server fail.
  ``null`` values are dropped, so they take ``BaseChatTemplate``'s defaults: ``''`` for every field —
  including ``meta_instruction``, so a file without it still emits an *empty* system block.
* ``BaseChatTemplate.messages2prompt``: when ``meta_instruction`` is not None and the first message is not a
  system message, ``system + meta_instruction + eosys`` comes first; each message is ``box + content + end``
  (system: ``system``/``eosys``, user: ``user``/``eoh``, assistant: ``assistant``/``eoa + separator``, tool:
  ``tool``/``eotool``); a last assistant message is a prefill (its end is cut off), otherwise ``assistant``
  is appended. ``tools``, ``tool_calls``, reasoning and ``capability`` are ignored.
* The OpenAI server turns ``content: null`` into ``""`` and joins text parts with ``"\\n"``
  (``MultimodalProcessor.merge_message_content``) before that.
* The prompt is tokenised with ``add_special_tokens=True`` (``add_special_tokens=False`` for a
  ``ChatGLM4Tokenizer``), and a doubled leading BOS is collapsed to one.
* Stop ids: for each stop word, every base-vocabulary token whose text contains it (more than 5 → only
  those decoding to exactly the word, first 5), else its id when it encodes to one token; plus the
  tokenizer's eos id and ``generation_config.json``'s eos ids.

``render(conv, add_generation_prompt=False)`` leaves out the trailing ``assistant`` box (history only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import InputError
from harness.limits import DEFAULT_MAX_OUTPUT, Limits
from harness.renderers._common import check_file_size, sha256_text
from harness.renderers.base import ContextLimit
from harness.renderers.engine import EngineRenderer

if TYPE_CHECKING:
    from harness.conversation import Conversation, Message
    from harness.tokenizer import Tokenizer

#: ``ChatTemplateConfig`` fields in LMDeploy 0.18 (``model_path`` is accepted too).
FIELDS = ("model_name", "model_path", "system", "meta_instruction", "eosys", "user", "eoh", "assistant", "eoa",
          "tool", "eotool", "separator", "capability", "stop_words")
TEXT_FIELDS = ("system", "meta_instruction", "eosys", "user", "eoh", "assistant", "eoa", "tool", "eotool", "separator")
CAPABILITIES = ("completion", "infilling", "chat", "python")
#: Built-in template names of LMDeploy 0.18 (``lmdeploy list``): a file naming one of them gets that class,
#: whose ``messages2prompt`` differs from the base template's; only ``base`` is reimplemented here.
BUILTIN_NAMES = ("chatglm", "codellama", "cogvlm", "deepseek-v3.2", "deepseek-v32", "deepseek-v4", "deepseek-vl",
                 "deepseek-vl2", "hf", "internvl-zh", "llama2", "llava-chatml", "llava-v1", "mistral", "mixtral",
                 "vicuna")
MAX_STOP_INDEXES = 5  # HuggingFaceTokenizer.max_indexes_num


@dataclass(frozen=True)
class LMDeployTemplate:
    """A loaded ``chat_template.json`` with LMDeploy's defaults applied: a missing or null field is ``''``
    (``meta_instruction`` too, so the system block is still emitted, as ``BaseChatTemplate`` does)."""

    origin: str
    source: str
    model_name: str | None
    system: str
    meta_instruction: str | None
    eosys: str
    user: str
    eoh: str
    assistant: str
    eoa: str
    separator: str
    tool: str
    eotool: str
    capability: str
    stop_words: tuple[str, ...] | None

    def messages2prompt(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        """``BaseChatTemplate.messages2prompt`` over message dicts (``content`` already a string)."""
        box = {"user": self.user, "assistant": self.assistant, "system": self.system, "tool": self.tool}
        end = {"user": self.eoh, "assistant": self.eoa + self.separator, "system": self.eosys, "tool": self.eotool}
        parts: list[str] = []
        if self.meta_instruction is not None and messages and messages[0]["role"] != "system":
            parts.append(f"{self.system}{self.meta_instruction}{self.eosys}")
        for m in messages:
            role = m["role"]
            parts.append(f"{box[role]}{m['content']}{end[role]}")
        ret = "".join(parts)
        if messages and messages[-1]["role"] == "assistant":
            tail = end["assistant"]
            return ret[:-len(tail)] if tail else ret  # a prefill: the answer goes on
        return ret + self.assistant if add_generation_prompt else ret


def load_template(path: str | Path) -> LMDeployTemplate:
    """Read and validate a ``chat_template.json``; raise InputError naming the file, the place and the fix."""
    p = Path(path).expanduser()
    what = f"lmdeploy chat template {str(path)!r}"
    if not p.is_file():
        raise InputError(f"{what}: no such file; pass the chat_template.json given to `lmdeploy serve "
                         "--chat-template`, e.g. lmdeploy:fixtures/lmdeploy/qwen2.5.chat_template.json")
    check_file_size(p, "lmdeploy chat template")
    try:
        source = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: cannot read it as UTF-8 text ({exc}); save it as a UTF-8 JSON file") from None
    try:
        data = json.loads(source)
    except RecursionError:
        raise InputError(f"{what}: the JSON nests deeper than Python's recursion limit; write one flat object of "
                         "ChatTemplateConfig fields") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; fix the file "
                         "(one JSON object of ChatTemplateConfig fields; escape newlines inside strings as \\n, no "
                         "trailing commas) — LMDeploy would refuse it too") from None
    if not isinstance(data, dict):
        raise InputError(f"{what}: the JSON is a {type(data).__name__}, not an object; write "
                         '{"model_name": "...", "system": "...", "user": "...", ...}')
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InputError(f"{what}: unknown field(s) {', '.join(map(repr, unknown))} (LMDeploy raises TypeError on "
                         f"them); use only {', '.join(FIELDS)}")
    for key in TEXT_FIELDS + ("model_name", "model_path"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{what}: field {key!r}={value!r} (type={type(value).__name__}) must be a string or null; "
                             f"quote it, e.g. \"{key}\": \"...\"")
    stops = data.get("stop_words")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise InputError(f"{what}: field 'stop_words'={stops!r} must be a list of strings, e.g. [\"<|im_end|>\"]")
    cap = data.get("capability")
    if cap is not None and cap not in CAPABILITIES:
        raise InputError(f"{what}: field 'capability'={cap!r} must be one of {', '.join(CAPABILITIES)} (or null)")
    name = data.get("model_name")
    if name in BUILTIN_NAMES:
        raise InputError(f"{what}: model_name={name!r} is a built-in LMDeploy template, so LMDeploy would use that "
                         "class (with its own prompt logic) instead of the fields in this file; give the file your "
                         "own model_name (e.g. \"my-model\") so LMDeploy uses the base template, or check the "
                         "built-in with its own engine")

    if isinstance(name, str) and "." in name:
        raise InputError(f"{what}: model_name={name!r} contains '.'; LMDeploy registers the name in an mmengine "
                         "Registry, which reads the part before the dot as a scope, so the server fails at start "
                         "(TypeError: 'NoneType' object is not callable). Use a name without dots, e.g. "
                         f"{name.replace('.', '_')!r}")

    def text(key: str) -> str:
        value = data.get(key)
        return "" if value is None else value

    return LMDeployTemplate(
        origin=str(p), source=source, model_name=name, system=text("system"),
        meta_instruction=text("meta_instruction"),  # None → BaseChatTemplate's default '' (never None)
        eosys=text("eosys"), user=text("user"), eoh=text("eoh"), assistant=text("assistant"), eoa=text("eoa"),
        separator=text("separator"), tool=text("tool"), eotool=text("eotool"), capability=cap or "chat",
        stop_words=tuple(stops) if stops is not None else None)


def lmdeploy_messages(conv: "Conversation") -> list[dict[str, Any]]:
    """The message dicts the LMDeploy OpenAI server hands to ``messages2prompt`` for ``conv``."""
    return [m.memo("lmdeploy", _lmdeploy_message) for m in conv.messages]


def _lmdeploy_message(message: "Message") -> dict[str, Any]:
    m = message.to_openai("request")
    out = dict(m)
    if out.get("content") is None:  # merge_message_content: missing/None content → ""
        out["content"] = ""
    return out


@lru_cache(maxsize=8)
def _token_texts(tokenizer: "Tokenizer") -> dict[str, int]:
    """``HuggingFaceTokenizer.token2id``: base-vocabulary token strings → id (later ids win on duplicates)."""
    hf = tokenizer.hf
    tokens = hf.convert_ids_to_tokens(list(range(hf.vocab_size)))
    return {t: i for i, t in enumerate(tokens) if isinstance(t, str)}


def lmdeploy_encode(tokenizer: "Tokenizer", text: str, add_special_tokens: bool = True) -> list[int]:
    """``lmdeploy.Tokenizer.encode(text, add_bos=False)``: special tokens added (never for ChatGLM4), a leading
    BOS dropped."""
    enc = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    return enc[1:] if enc and enc[0] == tokenizer.hf.bos_token_id else enc


def stop_word_ids(tokenizer: "Tokenizer", word: str, add_special_tokens: bool = True) -> list[int]:
    """``lmdeploy.Tokenizer.indexes_containing_token``: the ids LMDeploy stops on for one stop word — none when
    the word encodes to more than one id (LMDeploy logs "can not be used as stop words" and drops it), else
    every base-vocabulary token whose string contains it (``HuggingFaceTokenizer``'s rule)."""
    if len(lmdeploy_encode(tokenizer, word, add_special_tokens)) > 1:
        return []
    texts = _token_texts(tokenizer)
    needle = "▁" if word == " " else word
    ids = [i for t, i in texts.items() if needle in t]
    if len(ids) > MAX_STOP_INDEXES:
        ids = [i for i in ids if tokenizer.hf.decode([i], skip_special_tokens=True) == needle][:MAX_STOP_INDEXES]
    if not ids:
        enc = lmdeploy_encode(tokenizer, needle, add_special_tokens)
        ids = enc if len(enc) == 1 else []
    return ids


class LMDeployRenderer(EngineRenderer):
    """Deploy side as ``lmdeploy serve api_server MODEL --chat-template FILE`` builds prompts."""

    def __init__(self, spec: str, tokenizer: "Tokenizer", template: LMDeployTemplate, session_len: int | None = None
                 ) -> None:
        #: ``--session-len``: a prompt of ``>= session_len`` ids is refused (``AsyncEngine`` raises
        #: CONTEXT_LENGTH_EXCEEDED, serve/core/async_engine.py); None: no limit modelled
        self.session_len = session_len
        self.spec = spec
        self.tokenizer = tokenizer
        self.template = template
        self.add_special_tokens = tokenizer.tokenizer_config.get("tokenizer_class") != "ChatGLM4Tokenizer"
        self._stop_ids: frozenset[int] | None = None

    @property
    def stop_ids(self) -> frozenset[int]:
        if self._stop_ids is None:
            stops: set[int] = set()
            for word in self.template.stop_words or ():
                stops.update(stop_word_ids(self.tokenizer, word, self.add_special_tokens))
            if self.tokenizer.hf.eos_token_id is not None:
                stops.add(self.tokenizer.hf.eos_token_id)
            stops.update(self.tokenizer.generation_eos_ids)
            self._stop_ids = frozenset(stops)
        return self._stop_ids

    def render_text(self, conv: "Conversation", *, add_generation_prompt: bool = True) -> str:
        text = self.template.messages2prompt(lmdeploy_messages(conv), add_generation_prompt=add_generation_prompt)
        if len(text) > DEFAULT_MAX_OUTPUT:  # huge fields: refuse before tokenising, as for every engine
            from harness.errors import TemplateError
            from harness.sandbox import output_message

            raise TemplateError(output_message(self.template.origin, len(text), Limits()))
        return text

    def _collapse(self, ids: list[int]) -> list[int]:
        bos = self.tokenizer.hf.bos_token_id
        if bos is not None and ids[:2] == [bos, bos]:
            return ids[1:]
        return ids

    def encode(self, text: str) -> list[int]:
        return self._collapse(list(self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens)))

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        tok = self.tokenizer
        ids, offsets = tok.encode_offsets(text)
        if self.add_special_tokens:
            full = tok.encode(text, add_special_tokens=True)
            lead = next((i for i in range(len(full) - len(ids) + 1) if full[i:i + len(ids)] == ids), 0)
            offsets = [(0, 0)] * lead + list(offsets) + [(len(text), len(text))] * (len(full) - lead - len(ids))
            ids = full
            if self._collapse(ids) is not ids:
                ids, offsets = ids[1:], offsets[1:]
        return ids, offsets

    @property
    def context_limit(self) -> ContextLimit | None:
        return ContextLimit("session_len", self.session_len) if self.session_len else None

    def refusal(self, n: int) -> str | None:
        if self.session_len is None or n < self.session_len:
            return None
        return f"input length {n} ids >= session_len={self.session_len}"

    def describe(self) -> dict[str, Any]:
        import transformers

        t = self.template
        return {
            "kind": "lmdeploy", "spec": self.spec, "side": self.side, "engine": "lmdeploy 0.18 (reimplemented)",
            "template": t.origin, "template_sha256": sha256_text(t.source), "model_name": t.model_name,
            "add_special_tokens": self.add_special_tokens, "stop_words": list(t.stop_words or ()),
            "stop_ids": sorted(self.stop_ids), "versions": {"transformers": transformers.__version__},
            **({"session_len": self.session_len} if self.session_len else {}),
        }
