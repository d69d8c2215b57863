"""Calibration table: every real chat template we can find, paired with itself, judged by the strings.

A template trained TRL-style (``jinja:FILE``) and served by vLLM (``hf:FILE``) is the most consistent stack
there is, so every error the checks report on it is either a real divergence of that template with itself
(Qwen3 drops reasoning from history, DeepSeek-R1's generation prompt opens ``<think>``…) or a false error.
Each error is judged by :mod:`harness.agreement`: the string-level finding that explains it, or none — a
**harness artefact** (both sides write the same strings, yet a check reports an error).

The corpus, read from installed packages (never imported): TRL's ``trl/chat_templates/*.jinja``, axolotl's
``axolotl/utils/chat_templates/templates/*.jinja``, the Jinja template LLaMA-Factory's export writes for each
of its templates (``export_jinja(..., generated=true)``, what ``llamafactory-jinja:NAME,generated=true``
serves; exported once and cached, see :func:`lf_templates`), and the zoo models' own templates. Each runs on
the zoo tokenizer of its family (:data:`FAMILIES`), else on qwen2.5 as a stand-in. Conversations are the
CLI's (``generate(examples, seed, tools="any", reasoning=auto)``), so each class's command reproduces it.
Same seed → byte-identical document (no timings, no absolute paths).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

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
DEFAULT_OUT = Path("docs/calibration.md")
#: the README block ``--readme`` rewrites (summary and error classes; the per-template list stays in DEFAULT_OUT)
README_START, README_END = "<!-- calibration:start -->", "<!-- calibration:end -->"
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
@dataclass
class Row:
    """One template's sweep: conversations, training rejections, errors per class key, first example per key."""

    template: Template
    examples: int = 0
    rejected: int = 0
    classes: Counter = field(default_factory=Counter)
    first: dict = field(default_factory=dict)
    status: str = ""  # "" ran; else why it did not (cannot load, not exported, all rejected)
    same_as: str = ""  # the template with the same text and tokenizer whose sweep this row repeats

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        return "inconsistent" if self.classes else "consistent"


#: class key: (check, cause, finding kind or "" for a false error)
Key = tuple[str, str, str]


def sweep(template: Template, examples: int, seed: int) -> Row:
    """Run every check on ``examples`` generated conversations and judge each error by the strings."""
    from harness.agreement import judge
    from harness.api import load_model, make_pair, reads_reasoning
    from harness.errors import HarnessError
    from harness.generate import generate

    row = Row(template)
    if template.note.startswith("not exported"):
        row.status = "not exported"
        return row
    try:
        pair = make_pair(load_model(model=template.model), template.train, template.deploy)
        convs = generate(examples, seed=seed, tools="any", reasoning="any" if reads_reasoning(pair) else False)
        for conv in convs:
            row.examples += 1
            judged = judge(pair, conv)
            if judged is None:
                row.rejected += 1
                continue
            for j in judged:
                key = (j.failure.check, j.failure.cause, j.finding.kind if j.finding else "")
                row.classes[key] += 1
                row.first.setdefault(key, j)
    except HarnessError as exc:
        row.status = "cannot load"
        row.first[("", "", "")] = str(exc).splitlines()[0][:200]
        return row
    if row.examples and row.rejected == row.examples:
        row.status = "training side rejects all"
    return row


def template_text(template: Template) -> str:
    if template.path is not None:
        return template.path.read_text(encoding="utf-8")
    from harness.api import load_model

    return load_model(model=template.model).chat_template or ""


def run(templates: Iterable[Template], examples: int, seed: int, progress: bool = False) -> list[Row]:
    """Sweep each template; a template whose text and tokenizer equal an earlier one's shares its row."""
    rows: list[Row] = []
    seen: dict[tuple[str, str], Row] = {}
    for template in templates:
        start = time.perf_counter()
        key = (template_text(template), template.model) if template.path is not None or template.source == "zoo" \
            else None
        twin = seen.get(key) if key else None
        if twin is not None:
            rows.append(Row(template, twin.examples, twin.rejected, Counter(twin.classes), dict(twin.first), twin.status,
                            same_as=twin.template.id))
        else:
            rows.append(sweep(template, examples, seed))
            if key:
                seen[key] = rows[-1]
        if progress:
            print(f"  {template.id:45s} {rows[-1].verdict:14s} {time.perf_counter() - start:5.1f}s", file=sys.stderr)
    return rows


# --- the document -------------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _cell(f"{fence}{pad}{text}{pad}{fence}")


def explain(key: Key) -> str:
    """One class's explanation: what its cause means, and what the strings show (or that they agree)."""
    from harness.agreement import FINDINGS
    from harness.causes import cause_summary

    _, cause, finding = key
    head = cause_summary(cause) if cause else "no cause computed"
    if finding:
        return f"{head}; strings: {FINDINGS.get(finding, finding)}"
    return (f"{head}; **harness artefact**: the training text and every served prompt agree as strings (trained "
            "answers hold a deploy stop, control text is tokens), yet the check reports an error")


def render(rows: list[Row], examples: int, seed: int, sources: Sequence[str]) -> str:
    """The Markdown document (deterministic: no timings, no absolute paths)."""
    versions = {s: importlib.metadata.version(PACKAGES[s][0]) for s in sources if s in PACKAGES}
    if "llamafactory" in sources:
        versions["llamafactory"] = importlib.metadata.version("llamafactory")
    lines = [
        "# Calibration: real chat templates paired with themselves",
        "",
        f"Generated by `python benchmarks/calibrate.py --examples {examples} --seed {seed}` (`make calibrate`; "
        "sources: " + ", ".join(f"{s} {versions[s]}" if s in versions else s for s in sources) + "). Each template "
        "trains TRL-style (`jinja:FILE`) and is served by vLLM (`hf:FILE`) — the same template on both sides — on "
        "the zoo tokenizer of its family (qwen2.5 stands in when the zoo has none), over the conversations "
        f"`harness check --examples {examples} --seed {seed}` generates (tools any, reasoning when the template "
        "reads it). Every error is judged by the strings (`harness/agreement.py`): a *finding* is the "
        "string-level divergence that makes it real; an error without one is a **harness artefact**.",
        "",
        "| source | templates | consistent | inconsistent | training side rejects all | not run |",
        "|---|---|---|---|---|---|",
    ]
    for source in [*sources, "total"]:
        mine = [r for r in rows if source == "total" or r.template.source == source]
        verdicts = Counter(r.verdict for r in mine)
        not_run = verdicts["cannot load"] + verdicts["not exported"]
        lines.append(f"| {source} | {len(mine)} | {verdicts['consistent']} | {verdicts['inconsistent']} | "
                     f"{verdicts['training side rejects all']} | {not_run} |")
    classes: dict[tuple[str, str, str, bool], list[Row]] = {}
    for r in rows:
        for key in r.classes:
            classes.setdefault((*key, r.template.fits), []).append(r)
    order = sorted(classes, key=lambda k: (k[2] != "", not k[3], k[0], k[1], k[2]))
    lines += ["", "## Error classes", "",
              "One row per check, cause (`unclassified`: the check computes none yet), string-level finding and "
              "tokenizer (*family*: the zoo tokenizer of the template's family; *stand-in*: qwen2.5, whose "
              "vocabulary lacks the family's control tokens, so stop and control-token errors there are the set-up's, "
              "not the template's). Counts are templates and conversations with that error; the example is the "
              "first template's first such conversation, and its command replays the template.", "",
              "| check | cause | finding | tokenizer | templates | conversations | explanation | example |",
              "|---|---|---|---|---|---|---|---|"]
    for full in order:
        key, mine = full[:3], classes[full]
        judged = mine[0].first[key]
        shown = str(judged.finding) if judged.finding else judged.failure.explanation.split(". ")[0]
        names = ", ".join(f"`{r.template.id}`" for r in mine[:5]) + (f" +{len(mine) - 5}" if len(mine) > 5 else "")
        lines.append(f"| {key[0]} | {key[1] or 'unclassified'} | {key[2] or '**none: artefact**'} | "
                     f"{'family' if full[3] else 'stand-in'} | {len(mine)} | {sum(r.classes[key] for r in mine)} | "
                     f"{_cell(explain(key))} ({names}) | {_code(mine[0].template.command(examples, seed))}: "
                     f"{_cell(shown[:240])} |")
    if not order:
        lines.append("| – | – | – | – | 0 | 0 | no errors | – |")
    lines += ["", "## Templates", "",
              "| template | tokenizer | verdict | conversations | rejected by training | errors (check/cause: conversations) "
              "| note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        tok = r.template.model + ("" if r.template.fits else " (stand-in)")
        per: Counter = Counter()
        for (check, cause, _), n in r.classes.items():
            per[f"{check}/{cause or 'unclassified'}"] += n
        errors = ", ".join(f"{k}: {n}" for k, n in sorted(per.items())) or "–"
        note = "; ".join(filter(None, [f"same text as `{r.same_as}`" if r.same_as else "", r.template.note,
                                       r.first.get(("", "", "")) if r.status == "cannot load" else ""]))
        lines.append(f"| `{r.template.id}` | {tok} | {r.verdict} | {r.examples} | {r.rejected} | {errors} | "
                     f"{_cell(_short(str(note or '')))} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="conversations per template (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated subset of {','.join(SOURCES)}")
    parser.add_argument("--only", default="", help="regex on template ids (e.g. 'qwen')")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="also write the table here ('-': stdout only)")
    parser.add_argument("--readme", default="", help="also rewrite the calibration block of this README")
    parser.add_argument("--quiet", action="store_true", help="no per-template progress on stderr")
    args = parser.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        parser.error(f"--sources: unknown {', '.join(unknown)}; use {', '.join(SOURCES)}")
    templates = [t for t in corpus(sources) if re.search(args.only, t.id)]
    rows = run(templates, args.examples, args.seed, progress=not args.quiet)
    text = render(rows, args.examples, args.seed, sources)
    print(text, end="")
    if args.out != "-":
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if args.readme:
        update_readme(Path(args.readme), text)
    return 0


def update_readme(path: Path, document: str) -> None:
    """Replace the text between README_START and README_END with the document's summary and error classes."""
    readme = path.read_text(encoding="utf-8")
    if README_START not in readme or README_END not in readme:
        raise SystemExit(f"calibrate: {path} has no {README_START} … {README_END} block; add one where the table goes")
    body = document.split("\n", 2)[2].split("\n## Templates")[0].replace("\n## Error classes", "\n#### Error classes")
    head, rest = readme.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    path.write_text(f"{head}{README_START}\n{body.strip()}\n\nEvery template, with its tokenizer and errors: "
                    f"[docs/calibration.md](docs/calibration.md).\n{README_END}{tail}", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
