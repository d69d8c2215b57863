"""Option tables and the one rule that checks them; a refusal names the value and the accepted ones.

Each :class:`harness.specs.Kind` lists its options from here; spec options, config-file values (a
LLaMA-Factory YAML) and :func:`limits_of` all go through :func:`check_options` / :func:`check_value`.

>>> check_options("ollama", "ollama:M,think=maybe", {"think": "maybe"}, OLLAMA)
Traceback (most recent call last):
...
harness.errors.SpecError: spec='ollama:M,think=maybe': think='maybe' is not accepted; think takes auto|true|false|low|medium|high
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from harness.errors import SpecError
from harness.limits import DEFAULT_MAX_MEMORY, DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT, MAX_TIMEOUT, Limits


@dataclass(frozen=True)
class Option:
    """One option: the accepted values as the message shows them, and a test of a parsed value."""

    accepted: str
    ok: Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def boolean() -> Option:
    return Option("true|false", lambda v: isinstance(v, bool))


def choice(*values: Any) -> Option:
    names = "|".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    return Option(names, lambda v: any(v == x and type(v) is type(x) for x in values))


def positive_int(maximum: int, unit: str) -> Option:
    return Option(f"a whole number of {unit} from 1 to {maximum:,}", lambda v: _is_int(v) and 0 < v <= maximum)


def split_stops(text: str) -> tuple[str, ...]:
    """``stop=`` text → stop strings: ``|`` separates them, except inside a ``<|…|>`` token
    (``<|im_end|>|</s>`` is ``<|im_end|>`` and ``</s>``)."""
    return tuple(re.findall(r"<\|[^|<>]*\|>|(?:(?!<\|[^|<>]*\|>)[^|])+", text))


def _stop(v: Any) -> bool:
    if isinstance(v, str):
        parts = split_stops(v)
        return bool(parts) and "|".join(parts) == v  # no empty stop between two '|'s
    return isinstance(v, list) and bool(v) and all(isinstance(s, str) and s for s in v)


def _text(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


TIMEOUT = Option(f"a positive finite number of seconds, at most {MAX_TIMEOUT:g} (default {DEFAULT_TIMEOUT:g})",
                 lambda v: _number(v) and 0 < v <= MAX_TIMEOUT)
MAX_OUTPUT = positive_int(64 << 20, f"characters per rendered prompt (default {DEFAULT_MAX_OUTPUT:,})")
MAX_MEMORY = positive_int(16384, f"MiB of new memory per render (default {DEFAULT_MAX_MEMORY >> 20})")
STOP = Option("TEXT|TEXT (non-empty strings joined with '|') or a JSON list of strings", _stop)
LIMITS = {"timeout": TIMEOUT, "max_output": MAX_OUTPUT, "max_memory": MAX_MEMORY}
#: options checked here and then passed to a Jinja template as variables
TEMPLATE_VARIABLES = ("enable_thinking",)
JINJA = {**LIMITS, "stop": STOP, "add_special_tokens": boolean(), "enable_thinking": boolean(),
         "template": Option("the name of one of the model dir's chat templates (default, tool_use, ...)",
                            lambda v: isinstance(v, str) and bool(v))}
OLLAMA = {**LIMITS, "think": choice("auto", True, False, "low", "medium", "high"), "eog": choice("llama.cpp", "off"),
          "add_bos": boolean(), "num_ctx": positive_int(1 << 24, "tokens (Ollama's context: drop-oldest fitting)")}
LLAMAFACTORY = {
    "default_system": Option("text", _text),
    "enable_thinking": boolean(),
    "preserve_thinking": boolean(),
    "tool_format": Option("a LLaMA-Factory tool format name (default, qwen, llama3, glm4, mistral, ...)",
                          lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_]+", v) is not None),
    "train_on_prompt": boolean(),
    "mask_history": boolean(),
    "cutoff_len": positive_int(1 << 24, "tokens"),
    "tokenize": choice("harness", "hf"),
}


def _parser_names(which: str) -> tuple[str, ...]:
    from harness.parsers import registry  # static name lists: no engine import

    return registry.TOOL_PARSER_NAMES if which == "tool" else registry.REASONING_PARSER_NAMES


def _known_parser(which: str) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        bare = v[len("vllm:"):] if isinstance(v, str) and v.startswith("vllm:") else v
        return isinstance(v, str) and bare in _parser_names(which)
    return ok


#: the engine's output parsers (vLLM ``--tool-call-parser`` / ``--reasoning-parser``): deploy options only
PARSERS = {
    "tool_parser": Option("a vLLM --tool-call-parser name (hermes, llama3_json, mistral, pythonic, glm45, deepseek_v3, "
                          "qwen3_coder, ...) or llamafactory:FORMAT (default, qwen, glm4, llama3, mistral, ...)",
                          _known_parser("tool")),
    "reasoning_parser": Option("a vLLM --reasoning-parser name (deepseek_r1, qwen3, glm45, ...)",
                               _known_parser("reasoning")),
}
XTUNER = {"max_length": positive_int(1 << 24, "tokens (XTuner's encode_fn cut)")}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_options(kind: str, spec: str, options: Mapping[str, Any], table: Mapping[str, Option], *,
                  template_vars: bool = False) -> None:
    """Raise SpecError for an unknown option or a value outside its accepted ones (with ``template_vars``,
    other well-formed names pass: they are template variables)."""
    for key, value in options.items():
        option = table.get(key)
        if option is None and key in PARSERS:
            raise SpecError(f"spec={spec!r}: {key} is a deploy option (the serving engine's output parser, vLLM "
                            f"--{'tool-call' if key == 'tool_parser' else 'reasoning'}-parser); {kind} does not take "
                            f"it: pass it on the --deploy spec, e.g. --deploy hf:.,{key}={_show(value)}")
        if option is None:
            if template_vars and _NAME.fullmatch(key):
                continue
            what = "template variable names start with a letter" if template_vars else _listing(kind, table)
            raise SpecError(f"spec={spec!r}: unknown option {key!r}; {what}")
        if not option.ok(value):
            raise SpecError(f"spec={spec!r}: {key}={_show(value)} is not accepted; {key} takes {option.accepted}")


def check_value(where: str, key: str, value: Any, table: Mapping[str, Option]) -> None:
    """Check one value from a config file (a LLaMA-Factory YAML) against ``table``."""
    option = table.get(key)
    if option is not None and not option.ok(value):
        raise SpecError(f"{where}: {key}={_show(value)} (type={type(value).__name__}) is not accepted; "
                        f"{key} takes {option.accepted}")


def limits_of(options: Mapping[str, Any], default_timeout: float = DEFAULT_TIMEOUT) -> Limits:
    """The :class:`Limits` a spec asks for: ``timeout=``, ``max_output=`` chars, ``max_memory=`` MiB (each value
    checked by the same rule as a spec option: ``timeout=true`` is refused, never read as 1 s)."""
    for key in LIMITS:
        if key in options:
            check_value("limits", key, options[key], LIMITS)
    memory = options.get("max_memory")
    return Limits(timeout=float(options.get("timeout", default_timeout)),
                  max_output=int(options.get("max_output", DEFAULT_MAX_OUTPUT)),
                  max_memory=int(memory) << 20 if memory is not None else DEFAULT_MAX_MEMORY)


def _listing(kind: str, table: Mapping[str, Option]) -> str:
    if not table:
        return f"{kind} takes no options"
    return f"{kind} takes " + ", ".join(f"{k}={o.accepted if '|' in o.accepted else k.upper()}"
                                        for k, o in table.items())


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 60 else text[:57] + "..."
