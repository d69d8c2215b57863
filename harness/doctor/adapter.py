"""``lora-adapter-unmerged``: the dir is a PEFT LoRA adapter, not a model.

PEFT's ``save_pretrained`` writes ``adapter_config.json`` (+ ``adapter_model.safetensors``) and names the base
model in ``base_model_name_or_path``. An engine pointed at such a dir as a model either fails (no weights) or,
when base weights sit beside it, serves the base model without the fine-tune.
"""

from __future__ import annotations

import re
from typing import Iterator

from harness.doctor.base import Context, Finding, Lint, read_json_file
from harness.errors import InputError

ADAPTER_CONFIG = "adapter_config.json"
#: Full-model weight files (sharded or not); ``adapter_model.*`` is the adapter itself.
WEIGHTS = re.compile(r"(model|pytorch_model|tf_model|flax_model)(-\d+-of-\d+)?\.(safetensors|bin|h5|msgpack)"
                     r"|(model|pytorch_model)\.(safetensors|bin)\.index\.json|.+\.gguf")


def lora_adapter_unmerged(ctx: Context) -> Iterator[Finding]:
    """Rule: ``adapter_config.json`` in the dir → warning; error when the dir holds no full-model weights
    (:data:`WEIGHTS`) and the config names a base model (``base_model_name_or_path``)."""
    path = ctx.model_dir / ADAPTER_CONFIG
    if not path.is_file():
        return
    config = read_json_file(path, "adapter config")
    if not isinstance(config, dict):
        raise InputError(f"file='{path}' : holds a JSON {type(config).__name__}, not an object; PEFT writes "
                         "{\"peft_type\": ..., \"base_model_name_or_path\": ...}: fix or regenerate it")
    base = config.get("base_model_name_or_path")
    weights = sorted(p.name for p in ctx.model_dir.iterdir() if p.is_file() and WEIGHTS.fullmatch(p.name))
    severity = "error" if base and not weights else "warning"
    what = (f"no model weights here, so an engine serving the dir as a model fails or needs {base!r}"
            if severity == "error" else
            f"the full-model weights beside it ({', '.join(weights) or 'none'}) are what an engine serves — the "
            "base model without the fine-tune — unless the adapter is loaded as a LoRA")
    yield Finding("lora-adapter-unmerged", severity, ADAPTER_CONFIG,
                  f"the dir is an unmerged {config.get('peft_type', 'PEFT')} adapter (base model {base!r}): {what}",
                  "merge it: PeftModel.from_pretrained(base, DIR).merge_and_unload().save_pretrained(OUT), and "
                  "serve OUT; or serve the base model with the engine's LoRA option (vLLM --enable-lora "
                  "--lora-modules NAME=DIR, Ollama ADAPTER DIR in the Modelfile)",
                  (("base_model_name_or_path", base), ("peft_type", config.get("peft_type")),
                   ("weights", weights)))


LINTS = (Lint(
    "lora-adapter-unmerged", "error",
    "no adapter_config.json (warning), or error when there are no base weights and a base model is named",
    "A LoRA adapter dir holds only the low-rank deltas. Served as a model it is either refused (no weights) or, "
    "when a base model's weights are copied beside it, served as the base model: the fine-tune is silently absent.",
    "merge with peft merge_and_unload, or serve with the engine's LoRA option", lora_adapter_unmerged),)
