"""Which message-content form vLLM passes a chat template: ``"string"`` or ``"openai"`` (a list of parts).

vLLM 0.33 (``--chat-template-content-format auto``, ``vllm/renderers/hf.py: _detect_content_format``) parses
the template and looks for a ``for`` loop over a message's ``content``: over ``message['content']`` /
``message.content`` where ``message`` is a loop variable over ``messages`` (or over a variable or namespace
attribute assigned from it), over a macro parameter a call passes ``message.content`` to, or over a bare
``content`` outside macros. Found: ``"openai"``, every text is passed as ``[{"type": "text", "text": ...}]``;
otherwise, or when the template does not parse or the walk raises: ``"string"``. This module is that walk,
node for node (tests/test_vllm_fidelity.py counts its agreement with the real function on every template the
calibration corpus holds).
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache
from typing import Iterator

import jinja2.nodes as nodes

ContentFormat = str  # "string" | "openai"


@lru_cache(maxsize=64)
def detect_content_format(source: str) -> ContentFormat:
    """``"openai"`` when vLLM's auto-detection finds a loop over message content in ``source``, else
    ``"string"``."""
    from harness.sandbox import _ENV

    try:
        root = _ENV.parse(source)
    except Exception:  # noqa: BLE001 - vLLM logs and falls back to the default, "string"
        return "string"
    try:
        next(_content_loops(root))
    except StopIteration:
        return "string"
    except Exception:  # noqa: BLE001 - vLLM: "Error when parsing AST" -> default
        return "string"
    return "openai"


def _is_var(node: nodes.Node, name: str) -> bool:
    if isinstance(node, nodes.Name):
        return node.ctx == "load" and node.name == name
    if isinstance(node, nodes.Getattr) and "." in name:
        base, _, attr = name.rpartition(".")
        return node.attr == attr and _is_var(node.node, base)
    return False


def _is_attr(node: nodes.Node, name: str, key: str) -> bool:
    if isinstance(node, nodes.Getitem):
        return _is_var(node.node, name) and isinstance(node.arg, nodes.Const) and node.arg.value == key
    if isinstance(node, nodes.Getattr):
        return _is_var(node.node, name) and node.attr == key
    return False


def _is_var_or_elems(node: nodes.Node, name: str, key: str | None = None) -> bool:
    if isinstance(node, nodes.Filter):
        return node.node is not None and _is_var_or_elems(node.node, name, key)
    if isinstance(node, nodes.Test):
        return _is_var_or_elems(node.node, name, key)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice):
        return _is_var_or_elems(node.node, name, key)
    return _is_attr(node, name, key) if key else _is_var(node, name)


def _dotted(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.NSRef):
        return f"{node.name}.{node.attr}"
    parts = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    if isinstance(node, nodes.Name):
        parts.append(node.name)
        return ".".join(reversed(parts))
    return None


def _aliases_of(root: nodes.Node, name: str) -> Iterator[str]:
    """``name`` and every variable or namespace attribute assigned from it (or from its elements), transitively."""
    yield name
    seen = {name}
    queue = deque([name])
    while queue:
        current = queue.popleft()
        for assign in root.find_all(nodes.Assign):
            lhs, rhs = assign.target, assign.node
            if isinstance(lhs, nodes.Name) and _is_var_or_elems(rhs, current):
                yield lhs.name
                if lhs.name != current and lhs.name not in seen:
                    seen.add(lhs.name)
                    queue.append(lhs.name)
            aliases: list[str] = []
            if (isinstance(lhs, nodes.Name) and isinstance(rhs, nodes.Call) and isinstance(rhs.node, nodes.Name)
                    and rhs.node.name == "namespace"):
                aliases = [f"{lhs.name}.{kw.key}" for kw in rhs.kwargs if _is_var_or_elems(kw.value, current)]
            elif isinstance(lhs, (nodes.Getattr, nodes.NSRef)) and _is_var_or_elems(rhs, current):
                dotted = _dotted(lhs)
                aliases = [dotted] if dotted is not None else []
            for alias in aliases:
                yield alias
                if alias != current and alias not in seen:
                    seen.add(alias)
                    queue.append(alias)


def _message_names(root: nodes.Node) -> Iterator[str]:
    """Loop variables of ``for x in messages`` (or over an alias of it)."""
    names = list(_aliases_of(root, "messages"))
    for loop in root.find_all(nodes.For):
        for name in names:
            if _is_var_or_elems(loop.iter, name):
                assert isinstance(loop.target, nodes.Name)  # vLLM asserts too: a tuple target -> "string"
                yield loop.target.name
                break


def _content_loops(root: nodes.Node) -> Iterator[nodes.For]:
    """Loops over a message's content (vLLM's ``_iter_nodes_assign_content_item``)."""
    messages = list(_message_names(root))
    params_by_loop: dict[int, set[str]] = {}
    in_macros: set[int] = set()
    for macro in root.find_all(nodes.Macro):
        names = {arg.name for arg in macro.args}
        params: set[str] = set()
        for call in root.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == macro.name:
                for i, arg in enumerate(call.args):
                    if i < len(macro.args) and any(_is_var_or_elems(arg, m, "content") for m in messages):
                        params.add(macro.args[i].name)
                for kw in call.kwargs:
                    if (isinstance(kw, nodes.Keyword) and kw.key in names
                            and any(_is_var_or_elems(kw.value, m, "content") for m in messages)):
                        params.add(kw.key)
        for loop in macro.find_all(nodes.For):
            in_macros.add(id(loop))
            if params:
                params_by_loop[id(loop)] = params
    for loop in root.find_all(nodes.For):
        if any(_is_var_or_elems(loop.iter, m, "content") for m in messages):
            assert isinstance(loop.target, nodes.Name)
            yield loop
            continue
        params = params_by_loop.get(id(loop))
        if isinstance(loop.iter, nodes.Name) and params is not None and loop.iter.name in params:
            assert isinstance(loop.target, nodes.Name)
            yield loop
            continue
        if id(loop) not in in_macros and isinstance(loop.iter, nodes.Name) and loop.iter.name == "content":
            assert isinstance(loop.target, nodes.Name)
            yield loop


__all__ = ["ContentFormat", "detect_content_format"]
