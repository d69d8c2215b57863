"""The calibration corpus: every real chat template installed packages ship, each with the zoo tokenizer of its family.

TRL's ``trl/chat_templates/*.jinja``, axolotl's ``axolotl/utils/chat_templates/templates/*.jinja`` (read from
site-packages, never imported), the Jinja template LLaMA-Factory's export writes for each of its templates
(exported once and cached, see :func:`lf_templates`), and the zoo models' own templates. :mod:`harness.calibrate`
sweeps them; ``benchmarks/doctor_calibrate.py`` lints them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

#: (pattern on the template name, zoo model): the first match picks the tokenizer of the template's family; None:
#: a family whose tokenizer the zoo lacks although its name matches a later pattern (Mistral's Tekken, DeepSeek-Coder).
FAMILIES: tuple[tuple[str, str | None], ...] = (
    (r"tekken|pixtral|ministral|mistral_small|deepseekcoder|deepseek_coder", None),
    (r"r1_distill|r1-distill", "deepseek-r1-distill-qwen"),
    (r"deepseek_?r1", "deepseek-r1"),
    (r"deepseek", "deepseek-v3"),
    (r"qwen3|qwq", "qwen3"),
    (r"qwen", "qwen2.5"),
    (r"glm", "glm4"),
    (r"llama_?3|llama-3", "llama3"),
    (r"mistral|mixtral", "mistral-v3"),
)
STAND_IN = "qwen2.5"
SOURCES = ("zoo", "trl", "axolotl", "llamafactory")
#: (package, version the table was made with, directory of templates inside site-packages)
PACKAGES = {"trl": ("trl", "1.16.0", "trl/chat_templates"),
            "axolotl": ("axolotl", "0.19.0", "axolotl/utils/chat_templates/templates")}


@dataclass(frozen=True)
class Template:
    """One corpus entry: ``id`` (``source:name``), the zoo model whose tokenizer it runs on, the train and deploy
    specs (``path`` is the file both read; None for a zoo model's own template), and whether the tokenizer is the
    template's family (False: qwen2.5 stands in)."""

    id: str
    model: str
    path: Path | None
    fits: bool
    note: str = ""

    @property
    def source(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def train(self) -> str:
        return f"jinja:{self.path if self.path is not None else '.'}"

    @property
    def deploy(self) -> str:
        return f"hf:{self.path if self.path is not None else '.'}"

    def command(self, examples: int, seed: int) -> str:
        """The ``harness check`` line that replays this row (site-packages and cache paths shortened)."""
        return (f"harness check --model {self.model} --train {_short(self.train)} --deploy {_short(self.deploy)} "
                f"--examples {examples} --seed {seed}")


def _short(spec: str) -> str:
    for root, name in ((_site(), "$SITE/"), (str(cache_dir()) + os.sep, "$CACHE/")):
        spec = spec.replace(root, name)
    return spec


def _site() -> str:
    return str(Path(importlib.metadata.distribution("transformers").locate_file(""))) + os.sep


def cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR/calibration`` (default ``~/.cache/template-harness/calibration``): derived templates."""
    root = os.environ.get("HARNESS_CACHE_DIR") or "~/.cache/template-harness"
    return Path(root).expanduser() / "calibration"


def family(name: str) -> tuple[str, bool]:
    """(zoo model, fits) for a template name: its family's tokenizer, else the qwen2.5 stand-in."""
    low = name.lower()
    for pattern, model in FAMILIES:
        if re.search(pattern, low):
            return (model, True) if model else (STAND_IN, False)
    return STAND_IN, False


def package_templates(source: str) -> list[Template]:
    """``*.jinja`` of an installed package (``trl`` or ``axolotl``), read from site-packages, never imported."""
    package, version, sub = PACKAGES[source]
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"calibrate: {package} is not installed; pip install --no-deps {package}=={version} "
                         "(requirements-zoo.txt)") from None
    if dist.version != version:
        print(f"calibrate: {package} {dist.version} installed, the table was made with {version}", file=sys.stderr)
    root = Path(dist.locate_file(sub))
    out = []
    for path in sorted(root.glob("*.jinja")):
        model, fits = family(path.stem)
        out.append(Template(f"{source}:{path.stem}", model, path, fits))
    return out


def zoo_templates() -> list[Template]:
    from harness.zoo import zoo_names

    return [Template(f"zoo:{name}", name, None, True) for name in zoo_names()]


def lf_templates(names: Sequence[str] | None = None) -> list[Template]:
    """LLaMA-Factory's exported Jinja (``export_jinja(..., generated=true)``) per template, on its family's
    tokenizer, written once to ``$HARNESS_CACHE_DIR/calibration/llamafactory-VERSION/`` (exporting builds LF's
    template on a deep copy of the tokenizer: seconds per template). The deploy side adds the eos LF's export
    saves (``replace_eos``) is noted, not added as a stop: in the zoo families it already is a deploy stop (Llama-3's
    ``<|eot_id|>``), elsewhere it is no token of the stand-in tokenizer."""
    from harness.api import load_model
    from harness.renderers.llamafactory.export import export_jinja
    from harness.renderers.llamafactory.upstream import import_llamafactory, known_templates

    lf = import_llamafactory()
    logging.getLogger("llamafactory").setLevel(logging.ERROR)  # its INFO lines go to stdout, where the table goes
    out = []
    for name in names if names is not None else known_templates():
        model, fits = family(name)
        tok = load_model(model=model)
        folder = cache_dir() / f"llamafactory-{lf.VERSION}" / tok.model_dir.name  # the zoo dir name carries its key
        path, meta = folder / f"{name}.jinja", folder / f"{name}.json"
        if not meta.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            try:
                source, info = export_jinja(f"llamafactory-jinja:{name},generated=true", tok, name, {"generated": True})
                path.write_text(source, encoding="utf-8")
            except Exception as exc:  # LF refuses this set-up (e.g. a multimodal template without its processor)
                info = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
            meta.write_text(json.dumps(info, sort_keys=True, default=str), encoding="utf-8")
        info = json.loads(meta.read_text(encoding="utf-8"))
        if "error" in info:
            out.append(Template(f"llamafactory:{name}", model, None, fits, note=f"not exported: {info['error']}"))
            continue
        changes = info.get("tokenizer_changes") or {}
        eos = (changes.get("eos_token") or {}).get("after")
        added = changes.get("added_tokens") or []
        note = "; ".join(filter(None, [f"LF replaces eos with {eos!r}" if eos else "",
                                       f"LF adds tokens {added}" if added else ""]))
        out.append(Template(f"llamafactory:{name}", model, path, fits, note))
    return out


def generation_variant_file(model: str) -> Path:
    """The zoo model's template with ``{% generation %}`` blocks (:func:`harness.genblocks.generation_variant`),
    written once under :func:`cache_dir`."""
    from harness.api import load_model
    from harness.genblocks import generation_variant

    source = generation_variant(load_model(model=model).chat_template or "")
    path = cache_dir() / "generation" / f"{model}-{hashlib.sha256(source.encode()).hexdigest()[:12]}.jinja"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source, encoding="utf-8")
        os.replace(tmp, path)
    return path


def trl_training_templates() -> dict[str, Path]:
    """zoo model → TRL's training template (``X_training.jinja``) whose original (``X.jinja``) is byte-identical to
    the model's own template: TRL's real patched templates, with their ``{% generation %}`` blocks."""
    from harness.api import load_model
    from harness.zoo import zoo_names

    originals = {t.path: t.path.read_text(encoding="utf-8") for t in package_templates("trl") if t.path is not None}
    out = {}
    for model in zoo_names():
        source = load_model(model=model).chat_template
        for path, text in sorted(originals.items()):
            training = path.with_name(f"{path.stem}_training.jinja")
            if text == source and training.is_file():
                out[model] = training
    return out


def corpus(sources: Sequence[str] = SOURCES, lf_names: Sequence[str] | None = None) -> list[Template]:
    """Every template of ``sources``, in a fixed order."""
    out: list[Template] = []
    for source in sources:
        if source == "zoo":
            out += zoo_templates()
        elif source == "llamafactory":
            out += lf_templates(lf_names)
        else:
            out += package_templates(source)
    return out


# --- the sweep -------------------------------------------------------------------------------------------------
