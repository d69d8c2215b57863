"""LLaMA-Factory options: spec options and a train.yaml's training keys (spec options win), checked once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import InputError, SpecError

YAML_KEYS = ("template", "default_system", "cutoff_len", "enable_thinking", "preserve_thinking", "tool_format",
             "train_on_prompt", "mask_history")


def lf_options(spec: str, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (spec options over the YAML's) checked by the one option rule (``harness.options``), plus what only
    LLaMA-Factory knows: its tool formats, and ``mask_history`` with ``train_on_prompt`` refused."""
    from harness.options import LLAMAFACTORY, check_options

    check_options("llamafactory", spec, raw, LLAMAFACTORY)
    out = dict(raw)
    if out.get("default_system") is not None:
        out["default_system"] = str(out["default_system"])
    if out.get("tool_format") is not None:
        from llamafactory.data.tool_utils import TOOLS

        if out["tool_format"] not in TOOLS:
            raise SpecError(f"spec={spec!r}: tool_format={out['tool_format']!r} is not a LLaMA-Factory tool format; "
                            f"use one of {', '.join(TOOLS)}")
    if out.get("mask_history") and out.get("train_on_prompt"):
        raise SpecError(f"spec={spec!r}: mask_history and train_on_prompt together are refused by LLaMA-Factory "
                        "(`mask_history` is incompatible with `train_on_prompt`); drop one")
    return out


def read_yaml(path: Path, spec: str) -> dict[str, Any]:
    """The training keys of a LLaMA-Factory train.yaml; InputError naming the file on any problem."""
    import yaml

    if not path.is_file():
        raise InputError(f"spec={spec!r}: {str(path)!r}: no such file; pass the LLaMA-Factory training config "
                         "(e.g. examples/train_lora/qwen2_5_lora_sft.yaml) or a template name like llamafactory:qwen")
    if path.stat().st_size > 1 << 20:
        raise InputError(f"spec={spec!r}: {str(path)!r} is {path.stat().st_size:,} bytes; a LLaMA-Factory train.yaml "
                         "is a few lines of `key: value` (limit 1 MiB): pass the training config itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError, RecursionError) as exc:
        raise InputError(f"spec={spec!r}: {str(path)!r} is not valid YAML ({(str(exc).splitlines() or [type(exc).__name__])[0]}); fix the file "
                         "(LLaMA-Factory reads it with the same parser)") from None
    if not isinstance(data, dict):
        raise InputError(f"spec={spec!r}: {str(path)!r} holds {type(data).__name__}, not a mapping of training "
                         "arguments; a train.yaml is `key: value` lines (template: qwen, cutoff_len: 2048, ...)")
    from harness.options import LLAMAFACTORY, Option, check_value

    table = {"template": Option("a LLaMA-Factory template name, e.g. qwen", lambda v: isinstance(v, str) and bool(v)),
             **LLAMAFACTORY}
    for key in YAML_KEYS:
        if data.get(key) is not None:
            check_value(f"spec={spec!r}: {str(path)!r}", key, data[key], table)
    return data


def is_yaml(arg: str) -> bool:
    return arg.endswith((".yaml", ".yml")) or "/" in arg or Path(arg).is_file()
