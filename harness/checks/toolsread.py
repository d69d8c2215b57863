"""What each side tells the model about one tool element: its JSON read back from both renderings, compared
with ``deepdiff.DeepDiff`` (values) and as text (serialisation).

>>> key_orders({"b": 1, "a": {"d": 0, "c": 0}})
[('', ['b', 'a']), ('.a', ['d', 'c'])]
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from harness.checks.base import Case
    from harness.conversation import Conversation

Path = tuple[Any, ...]

_IDENT = re.compile(r"^[\w$]+$")


def fmt(path: Path) -> str:
    """``("tools", 1, "function", "name")`` → ``tools[1].function.name`` (odd keys as ``['a b']``)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += ("." if out else "") + part
        else:
            out += f"[{part!r}]"
    return out


def prune(value: Any, removed: set[Path], path: Path = ()) -> Any:
    """``value`` without the elements at ``removed`` (paths in ``value``'s own indices)."""
    if isinstance(value, dict):
        return {k: prune(v, removed, path + (k,)) for k, v in value.items() if path + (k,) not in removed}
    if isinstance(value, list):
        return [prune(v, removed, path + (i,)) for i, v in enumerate(value) if path + (i,) not in removed]
    return value
_DECODER = json.JSONDecoder()


def json_objects(text: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Every JSON object in ``text`` as ``(start, end, value)``, outermost first, in order of start."""
    at = text.find("{")
    while at >= 0:
        try:
            value, end = _DECODER.raw_decode(text, at)
        except ValueError:
            value, end = None, at
        if isinstance(value, dict):
            yield at, end, value
        at = text.find("{", at + 1)


def _get(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


def _tool_of(obj: dict[str, Any], name: str) -> dict[str, Any] | None:
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    return fn if fn.get("name") == name and ("parameters" in fn or "description" in fn) else None


def _args_of(obj: dict[str, Any], name: str, want: dict[str, Any]) -> Any:
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    if fn.get("name") == name:
        for key in ("arguments", "parameters"):
            args = fn.get(key)
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    continue
            if isinstance(args, dict) and not ("properties" in args and args.get("type") == "object"
                                               and "properties" not in want):
                return args
    return None


def find(text: str, path: Path, request: dict[str, Any], removed: frozenset[Path] = frozenset()
         ) -> tuple[str, Any] | None:
    """The raw JSON text and value a rendering gives the tool or call that ``path`` lies in (first match);
    ``removed`` are the elements the rendered conversation no longer has."""

    if path[0] == "tools":
        name = request["tools"][path[1]]["function"]["name"]
        pick = lambda obj: _tool_of(obj, name)  # noqa: E731
    else:
        call = request["messages"][path[1]]["tool_calls"][path[3]]["function"]
        args = path[:4] + ("function", "arguments")
        name, want = call["name"], prune(call["arguments"], set(removed), args)
        pick = lambda obj: _args_of(obj, name, want) if _args_of(obj, name, want) is not None else (  # noqa: E731
            obj if obj == want or (want and set(obj) == set(want)) else None)
    for start, end, obj in json_objects(text):
        got = pick(obj)
        if got is not None:
            raw = text[start:end]
            if got is not obj:  # the inner object: its own text, when it is written as one
                inner = json.dumps(got, ensure_ascii=False)
                raw = _inner_text(raw, got) or inner
            return raw, got
    return None


def _inner_text(raw: str, value: Any) -> str | None:
    """The text of the JSON object inside ``raw`` that decodes to ``value`` (None: written as a string)."""
    for start, end, obj in json_objects(raw):
        if start and obj == value:
            return raw[start:end]
    return None


def key_orders(value: Any, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Each object's key order, by path (objects only: list items keep their place)."""
    out: list[tuple[str, list[str]]] = []
    if isinstance(value, dict):
        out.append((prefix, list(value)))
        for k, v in value.items():
            out.extend(key_orders(v, f"{prefix}.{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(key_orders(v, f"{prefix}[{i}]"))
    return out


def serialisation(train_raw: str, deploy_raw: str, train: Any, deploy: Any) -> str:
    """How two texts of the same JSON value differ: key order, spacing, escaping."""
    said = []
    for (where, a), (_, b) in zip(key_orders(train), key_orders(deploy)):
        if a != b:
            said.append(f"key order at {where or 'the top'}: training {a}, deploy {b}")
            break
    if ("\\u" in train_raw) != ("\\u" in deploy_raw):
        side = "training" if "\\u" in train_raw else "deploy"
        said.append(f"{side} escapes non-ASCII as \\uXXXX (ensure_ascii)")
    if not said and _squeeze(train_raw) == _squeeze(deploy_raw):
        said.append(f"spacing or escaping: training {train_raw[:80]!r}, deploy {deploy_raw[:80]!r}")
    return "; ".join(said) or f"training {train_raw[:80]!r}, deploy {deploy_raw[:80]!r}"


def _squeeze(text: str) -> str:
    return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def dd_paths(train: Any, deploy: Any, base: Path) -> list[tuple[str, Path]]:
    """``DeepDiff(train, deploy)`` as (kind, path under ``base``), sorted by path."""
    from deepdiff import DeepDiff

    diff = DeepDiff(train, deploy, verbose_level=2)
    out = [(kind.replace("_", " "), base + tuple(item.path(output_format="list")))
           for kind, items in diff.tree.items() for item in items]
    return sorted(out, key=lambda kp: (len(kp[1]), str(kp[1]), kp[0]))


def _around(a: str, b: str) -> str:
    c = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    lo = max(0, c - 30)
    return f"training writes {a[lo:c + 50]!r}, deploy {b[lo:c + 50]!r}"


def tell(case: "Case", small: "Conversation", k: int, path: Path, request: dict[str, Any],
         removed: frozenset[Path] = frozenset()) -> tuple[str, str, Path | None]:
    """(cause, sentence, DeepDiff's first path or None): what training and deploy tell the model about the element
    at ``path``, read from the renderings of ``small`` (the conversation reduced to the elements the divergence
    needs)."""

    train_text = case.pair.train.render_text(small, add_generation_prompt=False)
    deploy_text = case.pair.deploy.render_text(small.prefix(k), add_generation_prompt=True)
    base = ("tools", path[1], "function") if path[0] == "tools" else path[:4] + ("function", "arguments")
    what = "tool definition" if path[0] == "tools" else "history call's arguments object"
    t, d = find(train_text, path, request, removed), find(deploy_text, path, request, removed)
    if t is not None and d is not None:
        if t[1] != d[1]:
            paths = dd_paths(t[1], d[1], base)
            cause = "tool-definition-changed" if path[0] == "tools" else "tool-call-changed"
            shown = "; ".join(f"{kind} at {fmt(p)}" for kind, p in paths[:4])
            return cause, (f"the {what} differs as a JSON value (DeepDiff, training → deploy: {shown}); training "
                           f"writes {t[0][:160]!r}, deploy {d[0][:160]!r}"), paths[0][1] if paths else None
        if t[0] != d[0]:
            return "tool-json-format", (f"the {what} is the same JSON value on both sides but serialised "
                                        f"differently ({serialisation(t[0], d[0], t[1], d[1])})"), None
        return "tools-rendered", (f"the {what} is written alike, the text around it is not: "
                                  f"{_around(train_text, deploy_text)}"), None
    if t is not None or d is not None:
        side, other = ("training", "deploy") if t is not None else ("deploy", "training")
        return "tools-rendered", (f"{side} writes the {what} as JSON, {other} writes no JSON object for it: "
                                  f"{_around(train_text, deploy_text)}"), None
    return "tools-rendered", (f"the {what} is rendered as text (no JSON on either side): "
                              f"{_around(train_text, deploy_text)}"), None
