"""A model dir's small files, read without loading its tokenizer: config JSON (checked), chat templates,
special-token names, file hashes. Every error names the file, the key and the fix."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import TokenizerError

def _read_json(path: Path, *, required: bool) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise TokenizerError(f"file='{path}' : missing; pass a Hugging Face model directory") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"file='{path}' : unreadable ({exc}); check permissions and encoding") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenizerError(
            f"file='{path}' : invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix or regenerate it"
        ) from exc
    except RecursionError:
        raise TokenizerError(f"file='{path}' : JSON nested deeper than Python's recursion limit; fix or regenerate it"
                             ) from None


def check_config_files(model_dir: Path) -> None:
    """Refuse config files the harness or the engines cannot use, naming the file, the key and the fix:
    JSON that is not an object, a ``chat_template`` that is neither a string nor a list of ``{name, template}``,
    an ``eos_token_id`` that is not a token id or a list of them, a ``chat_template.jinja`` that is not UTF-8."""
    for name in ("tokenizer_config.json", "generation_config.json", "chat_template.json", "special_tokens_map.json"):
        data = _read_json(model_dir / name, required=False)
        if data is None:
            continue
        where = f"file='{model_dir / name}'"
        if not isinstance(data, dict):
            raise TokenizerError(f"{where} : holds a JSON {type(data).__name__}, not an object; it must be "
                                 "{\"key\": value, ...} as transformers saves it: fix or regenerate it")
        if name in ("tokenizer_config.json", "chat_template.json") and "chat_template" in data:
            _check_template_value(data["chat_template"], where)
        if name == "chat_template.json" and "chat_template" not in data:
            raise TokenizerError(f"{where} : has no \"chat_template\" key; it must be {{\"chat_template\": \"...\"}} "
                                 "as transformers saves it: fix it or remove the file")
        if name == "generation_config.json" and data.get("eos_token_id") is not None:
            eos = data["eos_token_id"]
            ids = eos if isinstance(eos, list) else [eos]
            if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
                raise TokenizerError(f"{where} : eos_token_id={eos!r} is not a token id; it must be a non-negative "
                                     "integer or a list of them (e.g. [151645, 151643]): fix generation_config.json")
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        try:
            jinja.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenizerError(f"file='{jinja}' : not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                 f"{exc.start}); save the chat template as UTF-8") from None
        except OSError as exc:
            raise TokenizerError(f"file='{jinja}' : unreadable ({exc}); check permissions") from None


def _check_template_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, str):  # null: no template
        return
    if isinstance(value, list) and value and all(
            isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("template"), str) for t in value):
        return
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise TokenizerError(f"{where} : chat_template={shown} (type={type(value).__name__}) is not a chat template; it "
                         "must be a Jinja template string or a list of {\"name\": ..., \"template\": ...} objects")


def read_chat_template(model_dir: str | Path) -> str | None:
    """A model dir's ``default`` chat template without loading its tokenizer (None when it has none)."""
    return read_chat_templates(model_dir).get("default")


def read_chat_templates(model_dir: str | Path) -> dict[str, str]:
    """Every named chat template of a model dir without loading its tokenizer ({} when it has none)."""
    path = Path(model_dir)
    check_config_files(path)
    return _chat_templates(path, _read_json(path / "tokenizer_config.json", required=False) or {})


#: transformers' ``CHAT_TEMPLATE_DIR``: one extra template per ``NAME.jinja`` file.
_EXTRA_TEMPLATES = "additional_chat_templates"


def _chat_templates(model_dir: Path, config: Mapping[str, Any]) -> dict[str, str]:
    """Named templates as transformers 5 loads them (``PreTrainedTokenizerBase._from_pretrained``).

    Template files win over the config: ``chat_template.jinja`` is ``default`` and each
    ``additional_chat_templates/NAME.jinja`` is ``NAME``; when any file exists, tokenizer_config.json's
    ``chat_template`` is ignored entirely (even with no chat_template.jinja). Otherwise tokenizer_config's
    ``chat_template`` (else chat_template.json's): a string is ``default``, a list of ``{"name", "template"}``
    is one template per entry (a repeated name: the last wins).
    """
    files: dict[str, str] = {}
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        files["default"] = _read_text(jinja)
    for extra in sorted((model_dir / _EXTRA_TEMPLATES).glob("*.jinja")):
        if extra.is_file():
            files[extra.name.removesuffix(".jinja")] = _read_text(extra)
    if files:
        return files
    template: Any = config.get("chat_template")
    where = model_dir / "tokenizer_config.json"
    extra_json = model_dir / "chat_template.json"
    if template is None and extra_json.is_file():
        template, where = (_read_json(extra_json, required=False) or {}).get("chat_template"), extra_json
    if isinstance(template, str):
        return {"default": template}
    if not isinstance(template, list):
        return {}
    named: dict[str, str] = {}
    for i, entry in enumerate(template):
        name = entry.get("name") if isinstance(entry, dict) else None
        text = entry.get("template") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(text, str):
            raise TokenizerError(f"file='{where}' : chat_template[{i}] is {str(entry)[:80]!r}, not "
                                 '{"name": "...", "template": "..."}; fix that entry of the chat_template list')
        named[name] = text
    return named


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(f"file='{path}' : unreadable ({exc}); check permissions and encoding") from exc


def _as_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks; once per path, mtime and size in a process (a model's
    tokenizer.json is hashed once for the verification key, ``describe()`` and the report's inputs)."""
    st = path.stat()
    return _sha256_file(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _sha256_file(path: str, mtime_ns: int, size: int) -> str:
    del mtime_ns, size  # only part of the cache key
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: transformers' named special-token attributes (``SPECIAL_TOKENS_ATTRIBUTES``), in its order.
_NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def special_token_names(model_dir: Path) -> dict[str, str]:
    """``special_tokens_map`` as transformers 5 builds it from the files: tokenizer_config.json's ``*_token``
    keys (``{"content": ...}`` or a string), overridden by special_tokens_map.json when the config has no
    ``added_tokens_decoder``. Only trusted once proven equal to AutoTokenizer's (see ``load``)."""
    config = _read_json(model_dir / "tokenizer_config.json", required=False) or {}
    init = dict(config)
    if "added_tokens_decoder" not in config:
        extra = _read_json(model_dir / "special_tokens_map.json", required=False) or {}
        init.update({k: v for k, v in extra.items() if k not in ("additional_special_tokens", "extra_special_tokens")})
    out: dict[str, str] = {}
    for key, value in init.items():
        content = value.get("content") if isinstance(value, dict) else value
        if key.endswith("_token") and isinstance(content, str) and (key in _NAMED_SPECIALS or isinstance(value, str)):
            out[key] = content
    extra_named = init.get("extra_special_tokens")
    if isinstance(extra_named, dict):
        out.update({k: v for k, v in extra_named.items() if isinstance(v, str)})
    return out
