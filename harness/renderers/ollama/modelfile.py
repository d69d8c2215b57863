r"""Ollama Modelfiles, parsed the way ``ollama create`` reads them.

Grammar (Ollama's ``parser/parser.go``, re-implemented): one command per line — ``FROM``, ``TEMPLATE``,
``SYSTEM``, ``PARAMETER name value``, ``MESSAGE role content``, ``ADAPTER``, ``LICENSE`` (and ``DRAFT``,
``RENDERER``, ``PARSER``, ``REQUIRES``); keywords are case-insensitive; ``#`` starts a comment only where a
command could start. A value runs to the end of its line unless it opens a quote: ``"…"`` and triple-quoted
values run (over newlines) until the text collected so far, trimmed, ends with the same quote. There are no
escapes (a backslash is kept as written). ``PARAMETER stop`` repeats and accumulates; for the other
commands the last one wins; ``MESSAGE`` roles are ``system``, ``user`` or ``assistant``.

>>> mf = parse_modelfile('FROM ./m.gguf\\nPARAMETER stop "<|im_end|>"\\nSYSTEM "Be brief."\\n')
>>> mf.model, mf.stop, mf.system
('./m.gguf', ('<|im_end|>',), 'Be brief.')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

__all__ = ["Command", "Modelfile", "load_modelfile", "parse_modelfile"]

COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
            "message", "requires")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Command:
    """One command: ``name`` (lower case; ``PARAMETER x`` gives name ``x``), its value and where it starts.

    ``value_line`` is the line on which the value's text begins (a TEMPLATE's line 1)."""

    name: str
    value: str
    line: int
    value_line: int
    role: str | None = None
    parameter: bool = False


@dataclass(frozen=True)
class Modelfile:
    """A parsed Modelfile. ``parameters`` keeps every ``PARAMETER`` in order; ``stop`` the stop strings."""

    path: str
    model: str
    template: str | None
    system: str | None
    parameters: tuple[tuple[str, str], ...]
    messages: tuple[tuple[str, str], ...]
    adapters: tuple[str, ...]
    licenses: tuple[str, ...]
    commands: tuple[Command, ...]

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.parameters if k == "stop")

    def parameter(self, name: str) -> str | None:
        """The last value of a non-repeating parameter (``temperature``, ``num_ctx``…), or None."""
        values = [v for k, v in self.parameters if k == name.lower()]
        return values[-1] if values else None

    @property
    def template_line(self) -> int:
        """Modelfile line on which the TEMPLATE text starts (for mapping template error lines)."""
        cmds = [c for c in self.commands if c.name == "template"]
        return cmds[-1].value_line if cmds else 0


def _unquote(text: str) -> tuple[str, bool]:
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


def _error(where: str, line: int, problem: str) -> InputError:
    return InputError(f"Modelfile={where!r} line {line}: {problem}")


def parse_modelfile(text: str, *, path: str = "<string>") -> Modelfile:
    """Parse Modelfile ``text``; raise InputError naming ``path``, the line and the fix."""
    if text.startswith("\ufeff"):
        text = text[1:]
    commands: list[Command] = []
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            if ch == "\n":
                line += 1
            i += 1
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        start_line = line
        j = i
        while j < n and text[j].isascii() and text[j].isalpha():
            j += 1
        word = text[i:j]
        if not word or j >= n or text[j] not in " \t":
            bad = text[i:j + 1].strip() or text[i:i + 20].split("\n")[0]
            if word.lower() in COMMANDS:
                raise _error(path, start_line, f"{word} has no value; write it as `{word.upper()} <value>` on one line")
            raise _error(path, start_line, f"unknown command {bad!r}; a line starts with one of "
                         f"{', '.join(c.upper() for c in COMMANDS)} (or # for a comment)")
        name = word.lower()
        if name not in COMMANDS:
            raise _error(path, start_line, f"unknown command {word!r}; a line starts with one of "
                         f"{', '.join(c.upper() for c in COMMANDS)} (or # for a comment)")
        i = j + 1
        role = None
        param = False
        if name in ("parameter", "message"):
            while i < n and text[i] in " \t":
                i += 1
            j = i
            allowed = (lambda c: c.isascii() and (c.isalnum() or c == "_")) if name == "parameter" else \
                (lambda c: c.isascii() and c.isalpha())
            while j < n and allowed(text[j]):
                j += 1
            key = text[i:j]
            if not key or j >= n or text[j] not in " \t":
                what = "PARAMETER needs a name and a value, e.g. `PARAMETER stop \"<|im_end|>\"`" if name == "parameter" \
                    else "MESSAGE needs a role and content, e.g. `MESSAGE user \"\"\"Hi\"\"\"`"
                raise _error(path, start_line, what)
            if name == "message":
                if key not in ROLES:
                    raise _error(path, start_line, f"MESSAGE role {key!r} is not one of system, user, assistant "
                                 "(roles are lower case)")
                role = key
            else:
                name, param = key.lower(), True
            i = j + 1
        # the value: up to a newline where the text so far (trimmed) is complete
        value_line = line
        buf_start = i
        while True:
            k = text.find("\n", i)
            end = n if k < 0 else k
            candidate = text[buf_start:end].strip()
            value, ok = _unquote(candidate)
            if ok:
                line += text.count("\n", i, end)
                i = end
                break
            if k < 0:
                opener = '"""' if candidate.startswith('"""') else '"'
                raise _error(path, value_line, f"unterminated {opener} block opened here; close it with {opener}")
            line += text.count("\n", i, end)
            i = end + 1
            line += 1
        # Ollama keeps only printable characters (plus the spaces, tabs and newlines inside a value)
        value = "".join(c for c in value if c.isprintable() or c in "\t\n\r")
        commands.append(Command(name, value, start_line, value_line, role, param))
    return _assemble(commands, path)


def _assemble(commands: list[Command], path: str) -> Modelfile:
    model = template = system = None
    params: list[tuple[str, str]] = []
    messages: list[tuple[str, str]] = []
    adapters: list[str] = []
    licenses: list[str] = []
    for c in commands:
        if c.parameter:
            params.append((c.name, c.value))
        elif c.name == "from":
            model = c.value
        elif c.name == "template":
            template = c.value
        elif c.name == "system":
            system = c.value
        elif c.name == "message":
            messages.append((c.role or "user", c.value))
        elif c.name == "adapter":
            adapters.append(c.value)
        elif c.name == "license":
            licenses.append(c.value)
    if model is None:
        raise InputError(f"Modelfile={path!r}: no FROM line; add `FROM <model or path to .gguf>` as Ollama requires")
    return Modelfile(path, model, template, system, tuple(params), tuple(messages), tuple(adapters),
                     tuple(licenses), tuple(commands))


def load_modelfile(path: str | Path) -> Modelfile:
    """Read and parse a Modelfile; InputError when it is missing, unreadable or malformed."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "Modelfile"
    if not p.is_file():
        raise InputError(f"Modelfile={str(path)!r}: no such file; pass the path of an Ollama Modelfile")
    from harness.renderers._common import check_file_size

    check_file_size(p, "Modelfile")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Modelfile={str(path)!r}: cannot read it as UTF-8 text ({exc})") from None
    return parse_modelfile(text, path=str(path))
