"""Every option of every spec kind, validated in one place; a refusal names the value and the accepted ones.

>>> check_options("ollama", "ollama:M,think=maybe", {"think": "maybe"})
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


def _bool() -> Option:
    return Option("true|false", lambda v: isinstance(v, bool))


def _choice(*values: Any) -> Option:
    names = "|".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    return Option(names, lambda v: any(v == x and type(v) is type(x) for x in values))


def _positive_int(maximum: int, unit: str) -> Option:
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
MAX_OUTPUT = _positive_int(64 << 20, f"characters per rendered prompt (default {DEFAULT_MAX_OUTPUT:,})")
MAX_MEMORY = _positive_int(16384, f"MiB of new memory per render (default {DEFAULT_MAX_MEMORY >> 20})")
STOP = Option("TEXT|TEXT (non-empty strings joined with '|') or a JSON list of strings", _stop)
LIMITS = {"timeout": TIMEOUT, "max_output": MAX_OUTPUT, "max_memory": MAX_MEMORY}
JINJA = {**LIMITS, "stop": STOP, "add_special_tokens": _bool(), "enable_thinking": _bool(),
         "template": Option("the name of one of the model dir's chat templates (default, tool_use, ...)",
                            lambda v: isinstance(v, str) and bool(v))}
OLLAMA = {**LIMITS, "think": _choice("auto", True, False, "low", "medium", "high"), "eog": _choice("llama.cpp", "off"),
          "add_bos": _bool(), "num_ctx": _positive_int(1 << 24, "tokens (Ollama's context: drop-oldest fitting)")}
LLAMAFACTORY = {
    "default_system": Option("text", _text),
    "enable_thinking": _bool(),
    "preserve_thinking": _bool(),
    "tool_format": Option("a LLaMA-Factory tool format name (default, qwen, llama3, glm4, mistral, ...)",
                          lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_]+", v) is not None),
    "train_on_prompt": _bool(),
    "mask_history": _bool(),
    "cutoff_len": _positive_int(1 << 24, "tokens"),
    "tokenize": _choice("harness", "hf"),
}

#: kind -> (its options, whether other keys are passed to the template as variables)
KIND_OPTIONS: dict[str, tuple[Mapping[str, Option], bool]] = {
    "hf": ({**JINJA, "max_model_len": _positive_int(1 << 24, "tokens (vLLM --max-model-len)")}, True),
    "jinja": ({**JINJA, "encode": _choice("whole", "segments"), "max_length": _positive_int(1 << 24, "tokens (TRL)"),
               "truncation_mode": _choice("keep_start", "keep_end")}, True),
    "ollama": (OLLAMA, False),
    "tgi": ({**LIMITS, "fuel": _positive_int(10**9, "template instructions"), "stop": STOP}, False),
    "lmdeploy": ({"session_len": _positive_int(1 << 24, "tokens (LMDeploy --session-len)")}, False),
    "llamafactory": (LLAMAFACTORY, False),
    "llamafactory-jinja": ({**LLAMAFACTORY, "generated": _bool()}, False),
    "llamafactory-ollama": ({**LLAMAFACTORY, **{k: OLLAMA[k] for k in ("think", "eog", "add_bos")}}, False),
    "paddlenlp": ({"max_length": _positive_int(1 << 24, "tokens"), "src_length": _positive_int(1 << 24, "tokens")},
                  False),
    "xtuner": ({"max_length": _positive_int(1 << 24, "tokens (XTuner's encode_fn cut)")}, False),
}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_options(kind: str, spec: str, options: Mapping[str, Any]) -> None:
    """Raise SpecError for an unknown option or a value outside its accepted ones (template variables pass)."""
    table, passthrough = KIND_OPTIONS.get(kind, ({}, False))
    for key, value in options.items():
        option = table.get(key)
        if option is None:
            if passthrough and _NAME.fullmatch(key):
                continue
            what = "template variable names start with a letter" if passthrough else _listing(kind, table)
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
    """The :class:`Limits` a (checked) spec asks for: ``timeout=``, ``max_output=`` chars, ``max_memory=`` MiB."""
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
