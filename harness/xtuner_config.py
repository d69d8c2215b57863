"""Read ``prompt_template`` and ``max_length`` from an XTuner config.py without executing it.

An XTuner config is Python (mmengine runs it). The harness parses it with :mod:`ast` and reads only two
module-level assignments, the last of each as Python would leave it:

* ``prompt_template = PROMPT_TEMPLATE.NAME`` (or ``PROMPT_TEMPLATE["NAME"]``);
* ``max_length = N`` where N is an int literal or arithmetic on literals (``int(2048 - (336 / 14)**2)``,
  as the LLaVA configs write it), evaluated here on numbers only.

Anything else on the right of those two names (a variable, a call, an import-time value) is refused with
the file and line: the harness will not run the config to find out.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

MAX_CONFIG_BYTES = 1 << 20
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod}


@dataclass(frozen=True)
class XTunerConfig:
    """What the harness reads from a config: the template name and ``max_length`` (None when unset)."""

    path: Path
    prompt_template: str
    max_length: int | None
    template_line: int
    max_length_line: int | None


def _where(path: Path, node: ast.AST) -> str:
    return f"{str(path)!r} line {getattr(node, 'lineno', '?')}"


def _template_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "PROMPT_TEMPLATE":
        return node.attr
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "PROMPT_TEMPLATE"
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        return node.slice.value
    return None


def _number(node: ast.expr, depth: int = 0) -> float | int:
    """Arithmetic on int/float literals only (``int(...)`` allowed); ValueError on anything else."""
    if depth > 20:
        raise ValueError("too deeply nested")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand, depth + 1)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _number(node.left, depth + 1), _number(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1 << 32):
            raise ValueError("power too large")
        return _OPS[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int"
            and len(node.args) == 1 and not node.keywords):
        return int(_number(node.args[0], depth + 1))
    raise ValueError("not a number literal")


def read_config(path: Path, spec: str) -> XTunerConfig:
    """Parse ``path``; InputError naming the file (and line) when it cannot be read this way."""
    if not path.is_file():
        raise InputError(f"spec={spec!r}: {str(path)!r}: no such file; pass an XTuner config "
                         "(e.g. xtuner/configs/qwen/qwen1_5/qwen1_5_0_5b_chat/qwen1_5_0_5b_chat_qlora_alpaca_e3.py) "
                         "or a template name like xtuner:qwen_chat")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"spec={spec!r}: {str(path)!r} is {path.stat().st_size:,} bytes; an XTuner config is a "
                         "few hundred lines (limit 1 MiB): pass the config itself")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"spec={spec!r}: {str(path)!r}{f' line {line}' if line else ''} is not valid Python "
                         f"({type(exc).__name__}); fix the config (XTuner runs it as Python)") from None
    template: tuple[str, int] | None = None
    length: tuple[int, int] | None = None
    for node in tree.body:  # module level only, in order: the last assignment wins
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        value = getattr(node, "value", None)
        if "prompt_template" in names:
            name = _template_name(value)
            if name is None:
                raise InputError(f"spec={spec!r}: {_where(path, node)}: prompt_template = "
                                 f"{ast.unparse(value)[:60]!r} is not PROMPT_TEMPLATE.NAME; the harness reads the "
                                 "config without running it: write prompt_template = PROMPT_TEMPLATE.qwen_chat "
                                 "(or pass xtuner:NAME)")
            template = (name, node.lineno)
        if "max_length" in names:
            try:
                number = _number(value)
            except (ValueError, ArithmeticError, OverflowError) as exc:
                raise InputError(f"spec={spec!r}: {_where(path, node)}: max_length = {ast.unparse(value)[:60]!r} "
                                 f"is not a number the harness can read without running the config ({exc}); write "
                                 "an int literal, or pass max_length=N in the spec") from None
            if number != int(number) or int(number) <= 0:
                raise InputError(f"spec={spec!r}: {_where(path, node)}: max_length = {number!r} must be a positive "
                                 "whole number of tokens")
            length = (int(number), node.lineno)
    if template is None:
        raise InputError(f"spec={spec!r}: {str(path)!r} assigns no prompt_template at module level; an XTuner "
                         "SFT config sets prompt_template = PROMPT_TEMPLATE.NAME (or pass xtuner:NAME)")
    return XTunerConfig(path, template[0], length[0] if length else None, template[1], length[1] if length else None)
