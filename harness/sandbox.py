"""Chat templates compiled the way Hugging Face compiles them, rendered in a sandbox with a time limit.

The environment mirrors ``transformers.utils.chat_template_utils._cached_compile_jinja_template``:
``ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`` with ``loopcontrols``, the
``{% generation %}`` tag, ``raise_exception``, HF's ``tojson`` (no HTML escaping), a pinned
``strftime_now`` (reports must not change with the date), ``dict`` and a namespace that refuses
underscore names. A render that raises is a *rejection* (a finding), and so is a mutation the immutable
sandbox refuses (``list.append``: transformers and vLLM refuse those requests too). A render that reads an
unsafe attribute or passes a limit of :mod:`harness.limits` (time, rendered size, memory; ``*``, ``**`` and
``%`` building huge values, ``range`` past 100,000) is a ``TemplateError`` (hostile input, exit 2). Those three
operators are intercepted, so Jinja never constant-folds them at compile time, and compiling runs under the
same time and memory limits as rendering.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable

from harness.errors import HarnessError, RenderRejected, TemplateError
from harness.limits import (DEFAULT_TIMEOUT, MAX_INT_BITS, MAX_TEMPLATE_CHARS, MAX_VALUE_ITEMS, Guard, Limits,
                            Timeout, mib)

#: The date ``strftime_now`` reports, so Llama-3.x "Today Date" headers are reproducible.
PINNED_NOW = datetime(2026, 1, 15, 12, 0, 0)


class _GenerationTracker(jinja2.ext.Extension):
    """``{% generation %}…{% endgeneration %}``: records the char ranges of trained text, as HF does."""

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.CallBlock:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_mark", [jinja2.nodes.ContextReference()]), [], [], body
                                      ).set_lineno(lineno)

    def _mark(self, context: Any, caller: Any) -> str:
        text = caller()
        marks = context.get("__generation_marks__")
        if marks is not None:
            marks.append(text)
        return "\x00GEN\x01" + text + "\x00END\x01" if marks is not None else text


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


#: ``tojson`` of dicts and lists, keyed by identity and arguments; each entry holds its value, so its id stays its
#: own while cached. Values templates see are never changed (the sandbox is immutable; the harness passes shared,
#: read-only message and tool dicts), so one tool schema is serialised once for all prompts of a conversation.
_TOJSON: dict[tuple, tuple[Any, str]] = {}


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    if type(x) not in (dict, list):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    key = (id(x), ensure_ascii, repr(indent), repr(separators), sort_keys)
    hit = _TOJSON.get(key)
    if hit is not None and hit[0] is x:
        return hit[1]
    text = json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    if len(_TOJSON) > 4096:
        _TOJSON.clear()
    _TOJSON[key] = (x, text)
    return text


def _strftime_now(fmt: str) -> str:
    return PINNED_NOW.strftime(fmt)


class _TemplateDict:
    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _Namespace(jinja2.utils.Namespace):
    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - same trick as jinja2.utils.Namespace
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"namespace attribute {name!r} starts with '_'")


class _StrictSandbox(ImmutableSandboxedEnvironment):
    """HF's sandbox, except that reading an unsafe attribute fails at once instead of printing '', and that
    ``*``, ``**`` and ``%`` check the size of what they would build first (and are never constant-folded)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        if not attribute.startswith("_") and modifies_known_mutable(obj, attribute):
            raise _Refused(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif isinstance(left, str):
            _check_format(left, right)
        return self.binop_table[operator](left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``message.role`` on a plain dict: the item, as the sandbox would give it, minus its detour.

        For an exact ``dict`` and a name that is no attribute of ``dict``, the sandbox's ``getattr(obj, name)``
        always raises AttributeError and it falls back to ``obj[name]`` (Undefined when missing): same here.
        ``loop.index0`` and the other ``loop`` properties are returned as the sandbox returns them (plain values).
        Everything else (dict methods, other types) goes through the sandbox's checks unchanged."""
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        if type(obj) is LoopContext and attribute in _LOOP_ATTRIBUTES:  # loop.index0: what the sandbox returns
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)


_DICT_ATTRIBUTES = frozenset(dir(dict))
#: ``loop`` properties (plain values, never callables or internals): the sandbox would return them unchanged.
_LOOP_ATTRIBUTES = frozenset({"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth",
                              "depth0"})


def _too_big(what: str) -> _LimitExceeded:
    return _LimitExceeded(f"{what}, over the cap of {MAX_VALUE_ITEMS:,} items per value a template may build; "
                          "a chat template formats messages, it never builds values that big: fix the template")


def _check_repeat(left: Any, right: Any) -> None:
    """``'a' * n`` / ``[x] * n``: refuse results past :data:`MAX_VALUE_ITEMS` before they are built."""
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_VALUE_ITEMS:
            raise _too_big(f"{type(seq).__name__} of {len(seq):,} * {n:,} would have {len(seq) * n:,} items")


def _check_power(left: Any, right: Any) -> None:
    """``a ** b`` on integers: refuse results past :data:`MAX_INT_BITS` bits before they are computed."""
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = right * math.log2(abs(left))
        if bits > MAX_INT_BITS:
            raise _LimitExceeded(f"{left} ** {right} would be an integer of ~{bits:,.0f} bits, over the cap of "
                                 f"{MAX_INT_BITS:,} bits; a chat template never needs such numbers: fix the template")


_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")


def _check_format(fmt: str, args: Any) -> None:
    """``'%1000000000s' % x``: refuse printf widths or precisions past :data:`MAX_VALUE_ITEMS`."""
    if "%" not in fmt:
        return
    values = args if isinstance(args, tuple) else (args,)
    for m in _FORMAT_SPEC.finditer(fmt):
        for number in m.groups():
            if number is None:
                continue
            if number == "*":
                big = any(isinstance(v, int) and abs(v) > MAX_VALUE_ITEMS for v in values)
            else:
                big = len(number) > 7 or int(number) > MAX_VALUE_ITEMS
            if big:
                raise _too_big(f"the format {m.group(0)[:40]!r} pads to more than {MAX_VALUE_ITEMS:,} characters")


def _environment() -> ImmutableSandboxedEnvironment:
    env = _StrictSandbox(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, dict=_TemplateDict(),
                       namespace=_Namespace)
    return env


_ENV = _environment()


class _Refused(SecurityError):
    """The immutable sandbox refused a mutation (``list.append``…): transformers and vLLM refuse the request."""


class _LimitExceeded(SecurityError):
    """A value or output past a size cap (:mod:`harness.limits`): a hostile template."""


#: Special-token variables ``apply_chat_template`` passes only when the tokenizer defines them.
SPECIAL_TOKEN_VARIABLES = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
_UNDEFINED_NAME = re.compile(r"^'(\w+)' is undefined$")


@dataclass(frozen=True)
class RenderResult:
    text: str
    generation: tuple[tuple[int, int], ...]  # char ranges of {% generation %} blocks


class ChatTemplate:
    """A compiled chat template. ``origin`` names where it came from, for error messages.

    Compiling and every render run under ``limits`` (:mod:`harness.limits`): time, rendered size, memory."""

    def __init__(self, source: str, origin: str, *, timeout: float = DEFAULT_TIMEOUT,
                 limits: Limits | None = None) -> None:
        self.source = source
        self.origin = origin
        self.limits = limits if limits is not None else Limits(timeout=timeout)
        self.timeout = self.limits.timeout
        self._guard = Guard(self.limits)
        self.has_generation = "generation" in source and _has_generation_tag(source)
        self._template = _compile(source, origin, self.limits)
        self._render_func = self._template.root_render_func
        self._new_context = self._template.new_context

    def render(self, side: str, **context: Any) -> RenderResult:
        """Render with ``context``; raise RenderRejected (template refused) or TemplateError (hostile)."""
        marks: list[str] | None = [] if self.has_generation else None
        context["__generation_marks__"] = marks
        try:
            with self._guard:
                text = "".join(self._render_func(self._new_context(context)))
        except Timeout:
            raise TemplateError(
                f"template={self.origin!r}: rendering ran past the {self.timeout:g} s CPU-time limit (an endless or "
                "huge loop?); fix the template's loops, or raise the limit with timeout=SECONDS in the spec"
            ) from None
        except MemoryError:
            raise TemplateError(_memory_message(self.origin, "rendering", self.limits)) from None
        except _Refused as exc:
            raise RenderRejected(side, f"SecurityError: {exc} (the immutable sandbox of transformers and vLLM refuses "
                                       "to mutate a list or dict, so they refuse this request too)") from None
        except _LimitExceeded as exc:
            raise TemplateError(f"template={self.origin!r}: {exc}") from None
        except SecurityError as exc:
            raise TemplateError(
                f"template={self.origin!r}: the sandbox blocked an unsafe operation ({exc}); a chat template may only "
                "read messages, tools and the documented variables"
            ) from None
        except RecursionError:
            raise TemplateError(f"template={self.origin!r}: infinite recursion while rendering (past Python's "
                                f"recursion limit of {sys.getrecursionlimit()}); fix the template's recursive macros"
                                ) from None
        except OverflowError as exc:  # range() past the sandbox's MAX_RANGE, float overflow
            if "MAX_RANGE" in str(exc):
                raise TemplateError(f"template={self.origin!r}: {str(exc).rstrip('.')}; a chat template loops over "
                                    "messages and tools, never over huge ranges: fix the template") from None
            raise RenderRejected(side, f"OverflowError: {exc}") from None
        except jinja2.exceptions.UndefinedError as exc:
            raise _undefined(side, exc, self.origin, context) from None
        except Exception as exc:  # jinja2.TemplateError, TypeError, ... : the engine would refuse the request
            raise RenderRejected(side, f"{type(exc).__name__}: {exc}") from None
        if len(text) > self.limits.max_output:
            raise TemplateError(output_message(self.origin, len(text), self.limits))
        if marks is None:
            return RenderResult(text, ())
        return _strip_marks(text)


def output_message(origin: str, size: int, limits: Limits) -> str:
    """The TemplateError text for a rendering of ``size`` characters, over ``limits.max_output``."""
    return (f"template={origin!r}: one rendered prompt is {size:,} characters, over the {mib(limits.max_output)} cap "
            "on rendered size (checked before tokenising: a prompt that long exceeds any model's context and takes "
            "seconds to tokenise); fix the template, or raise the cap with max_output=CHARS in the spec")


def _memory_message(origin: str, what: str, limits: Limits) -> str:
    return (f"template={origin!r}: {what} needed more than the {mib(limits.max_memory)} memory cap (a template that "
            "builds huge strings or lists?); fix the template, or raise the cap with max_memory=MIB in the spec")


def _undefined(side: str, exc: Exception, origin: str, context: dict[str, Any]) -> HarnessError:
    """``'bos_token' is undefined`` when the tokenizer has no BOS blames the tokenizer set-up, not the request."""
    m = _UNDEFINED_NAME.match(str(exc))
    if m and m.group(1) in SPECIAL_TOKEN_VARIABLES and m.group(1) not in context:
        name = m.group(1)
        return TemplateError(
            f"template={origin!r} uses {name}, but the tokenizer defines no {name} (none in tokenizer_config.json / "
            f"special_tokens_map.json), so Hugging Face passes none and every request fails with '{name}' is "
            f"undefined; fix the tokenizer config (set \"{name}\") or the template's use of {name}")
    return RenderRejected(side, f"{type(exc).__name__}: {exc}")


def _strip_marks(text: str) -> RenderResult:
    out: list[str] = []
    ranges: list[tuple[int, int]] = []
    pos, length, start = 0, 0, -1
    while True:
        i = text.find("\x00", pos)
        if i < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:i])
        length += i - pos
        marker = text[i:i + 5]
        if marker == "\x00GEN\x01":
            start = length
        elif marker == "\x00END\x01":
            ranges.append((start, length))
        pos = i + 5
    return RenderResult("".join(out), tuple(ranges))


def _has_generation_tag(source: str) -> bool:
    import re

    return re.search(r"\{%-?\s*generation\s*-?%\}", source) is not None


def _compile(source: str, origin: str, limits: Limits) -> jinja2.Template:
    """Compile under ``limits`` (Jinja folds constants at compile time, so a bomb can go off here)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template={origin!r}: the template is {len(source):,} characters, over the "
                            f"{mib(MAX_TEMPLATE_CHARS)} cap on template size (real chat templates are < 50 KB); "
                            "pass the chat template itself")
    try:
        with Guard(limits):
            return _compile_cached(source)
    except Timeout:
        raise TemplateError(f"template={origin!r}: compiling ran past the {limits.timeout:g} s CPU-time limit (a "
                            "template with thousands of chained operators?); simplify the template, or raise the limit "
                            "with timeout=SECONDS in the spec") from None
    except MemoryError:
        raise TemplateError(_memory_message(origin, "compiling", limits)) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template={origin!r}: Jinja syntax error at line {exc.lineno}: {exc.message}; fix the template "
            "(it must parse with jinja2 as Hugging Face loads it)"
        ) from None
    except RecursionError:
        raise TemplateError(
            f"template={origin!r}: cannot compile: blocks or expressions nest deeper than Python's recursion limit "
            f"({sys.getrecursionlimit()}), so Hugging Face cannot load it either; flatten the nesting (chat templates "
            "need a handful of levels: use elif and loop filters instead of nested if/for)") from None
    except SyntaxError as exc:  # the Python code Jinja generates: 'too many statically nested blocks'
        raise TemplateError(
            f"template={origin!r}: cannot compile: {exc.msg} in the Python code Jinja generates (Python allows 20 "
            "nested loops/blocks), so Hugging Face cannot load it either; flatten the nested for/if blocks") from None
    except Exception as exc:  # pragma: no cover - jinja raises only syntax errors at compile time
        raise TemplateError(f"template={origin!r}: cannot compile ({type(exc).__name__}: {exc}); fix the template"
                            ) from None


@lru_cache(maxsize=64)
def _compile_cached(source: str) -> jinja2.Template:
    return _ENV.from_string(source)
