"""Chat templates compiled the way Hugging Face compiles them, rendered in a sandbox with a time limit.

The environment mirrors ``transformers.utils.chat_template_utils._cached_compile_jinja_template``:
``ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`` with ``loopcontrols``, the
``{% generation %}`` tag, ``raise_exception``, HF's ``tojson`` (no HTML escaping), a pinned
``strftime_now`` (reports must not change with the date), ``dict`` and a namespace that refuses
underscore names. A render that raises is a *rejection* (a finding); a render that breaks the sandbox or
runs past ``timeout`` seconds is a ``TemplateError`` (bad input, exit 2).
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterator

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.errors import RenderRejected, TemplateError

#: The date ``strftime_now`` reports, so Llama-3.x "Today Date" headers are reproducible.
PINNED_NOW = datetime(2026, 1, 15, 12, 0, 0)
DEFAULT_TIMEOUT = 2.0


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


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


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
    """HF's sandbox, except that reading an unsafe attribute fails at once instead of printing ''."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``message.role`` on a plain dict: the item, as the sandbox would give it, minus its detour.

        For an exact ``dict`` and a name that is no attribute of ``dict``, the sandbox's ``getattr(obj, name)``
        always raises AttributeError and it falls back to ``obj[name]`` (Undefined when missing): same here.
        Everything else (dict methods, other types) goes through the sandbox's checks unchanged."""
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


_DICT_ATTRIBUTES = frozenset(dir(dict))


def _environment() -> ImmutableSandboxedEnvironment:
    env = _StrictSandbox(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, dict=_TemplateDict(),
                       namespace=_Namespace)
    return env


_ENV = _environment()


class _Timeout(BaseException):
    """Raised inside a render that ran past its limit (BaseException so templates cannot swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; a no-op off the main thread or with seconds<=0)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGALRM)
    if previous is not _alarm:
        signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if previous is not _alarm:
            signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class RenderResult:
    text: str
    generation: tuple[tuple[int, int], ...]  # char ranges of {% generation %} blocks


class ChatTemplate:
    """A compiled chat template. ``origin`` names where it came from, for error messages."""

    def __init__(self, source: str, origin: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.source = source
        self.origin = origin
        self.timeout = timeout
        self.has_generation = "generation" in source and _has_generation_tag(source)
        self._template = _compile(source, origin)

    def render(self, side: str, **context: Any) -> RenderResult:
        """Render with ``context``; raise RenderRejected (template refused) or TemplateError (hostile)."""
        marks: list[str] | None = [] if self.has_generation else None
        try:
            with time_limit(self.timeout):
                text = self._template.render(__generation_marks__=marks, **context)
        except _Timeout:
            raise TemplateError(
                f"template={self.origin!r}: rendering ran past the {self.timeout:g} s limit (an endless or huge loop?); "
                "fix the template's loops, or raise the limit with --harness-timeout / timeout=SECONDS in the spec"
            ) from None
        except SecurityError as exc:
            raise TemplateError(
                f"template={self.origin!r}: the sandbox blocked an unsafe operation ({exc}); a chat template may only "
                "read messages, tools and the documented variables"
            ) from None
        except RecursionError:
            raise TemplateError(f"template={self.origin!r}: infinite recursion while rendering; fix the template's macros"
                                ) from None
        except MemoryError:
            raise TemplateError(f"template={self.origin!r}: rendering exhausted memory; fix the template") from None
        except Exception as exc:  # jinja2.TemplateError, TypeError, ... : the engine would refuse the request
            raise RenderRejected(side, f"{type(exc).__name__}: {exc}") from None
        if marks is None:
            return RenderResult(text, ())
        return _strip_marks(text)


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


@lru_cache(maxsize=64)
def _compile(source: str, origin: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template={origin!r}: Jinja syntax error at line {exc.lineno}: {exc.message}; fix the template "
            "(it must parse with jinja2 as Hugging Face loads it)"
        ) from None
    except Exception as exc:  # pragma: no cover - jinja raises only syntax errors at compile time
        raise TemplateError(f"template={origin!r}: cannot compile ({type(exc).__name__}: {exc})") from None
