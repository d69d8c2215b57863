"""PaddleNLP's real chat-template classes, loaded from the installed ``paddlenlp`` wheel without paddle.

``paddlenlp/transformers/tokenizer_utils.py`` imports ``paddle`` (a ~200 MB framework wheel) and the whole
``paddlenlp`` package at module level, although ``ChatTemplate`` and ``ChatTemplateMixin`` only use jinja2,
json and dataclasses. So the harness never imports the package: it parses the installed file (``pip install
--no-deps paddlenlp==2.8.1``) with :mod:`ast`, takes those two class definitions verbatim and executes them in
a namespace holding exactly the names they use (jinja2's sandbox, ``TemplateError``, ``lru_cache``, a logger).
The code that runs is PaddleNLP's own source text; only the module around it is replaced.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import threading
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.errors import InputError

MODULE = "harness._paddlenlp_tokenizer_utils"
CLASSES = ("ChatTemplate", "ChatTemplateMixin")
INSTALL = "pip install --no-deps -r requirements-paddlenlp.txt (paddlenlp==2.8.1; paddle itself is not needed)"
_LOCK = threading.Lock()


def source_path() -> Path:
    """The installed ``paddlenlp/transformers/tokenizer_utils.py``; InputError with the install line if absent."""
    try:
        spec = importlib.util.find_spec("paddlenlp")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in locations:
        path = Path(root) / "transformers" / "tokenizer_utils.py"
        if path.is_file():
            return path
    raise InputError(f"paddlenlp is not installed (its chat-template code is read from "
                     f"paddlenlp/transformers/tokenizer_utils.py); {INSTALL}")


def _namespace() -> dict[str, Any]:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    ns: dict[str, Any] = {name: getattr(typing, name) for name in ("Any", "Dict", "List", "Optional", "Tuple", "Union")}
    ns.update(json=json, os=os, asdict=asdict, dataclass=dataclass,
              lru_cache=functools.lru_cache, TemplateError=TemplateError,
              ImmutableSandboxedEnvironment=ImmutableSandboxedEnvironment,
              logger=logging.getLogger("paddlenlp"), CHAT_TEMPLATE_CONFIG_NAME="chat_template.json")
    return ns


@functools.lru_cache(maxsize=1)
def load() -> SimpleNamespace:
    """``ChatTemplate``, ``ChatTemplateMixin`` (PaddleNLP's classes), ``version`` and ``path`` of their source."""
    with _LOCK:
        path = source_path()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name in CLASSES]
        if sorted(n.name for n in found) != sorted(CLASSES):
            raise InputError(f"{str(path)!r} does not define {' and '.join(CLASSES)}; the harness reads PaddleNLP "
                             f"2.8.1's chat-template code: {INSTALL}")
        for node in found:  # the mixin's from_pretrained/save_resources reach paddle; the harness never calls them
            node.decorator_list = [d for d in node.decorator_list if not _is_six_metaclass(d)]
        module = ast.Module(body=found, type_ignores=[])
        holder = types.ModuleType(MODULE)  # dataclass() looks its class's module up in sys.modules
        holder.__dict__.update(_namespace())
        sys.modules[MODULE] = holder
        ns = holder.__dict__
        code = compile(module, str(path), "exec", flags=__import__("__future__").annotations.compiler_flag,
                       dont_inherit=True)
        exec(code, ns)  # noqa: S102 - PaddleNLP's own class bodies, from the installed wheel
    try:
        version = importlib.metadata.version("paddlenlp")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return SimpleNamespace(ChatTemplate=ns["ChatTemplate"], ChatTemplateMixin=ns["ChatTemplateMixin"],
                           version=version, path=str(path))


def _is_six_metaclass(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and "six" in ast.unparse(node.func)
