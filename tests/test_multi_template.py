"""Model dirs with several chat templates: loaded and picked per request as transformers does, and the verdicts.

Every dir is a copy of the zoo's Qwen2.5 with its templates rearranged:

* ``list``: tokenizer_config.json ``chat_template`` = [``default`` (Qwen2.5's), ``tool_use`` (Qwen3's, a real
  different template)];
* ``files``: ``chat_template.jinja`` (Qwen2.5's) + ``additional_chat_templates/tool_use.jinja`` (Qwen3's), with
  the config's own string left in place (transformers ignores it once template files exist);
* ``nodefault``: a list ``rag`` + ``tool_use``, no ``default``;
* ``extra-only``: only ``additional_chat_templates/tool_use.jinja`` beside the config's string (transformers then
  loses the config's default);
* ``same``: ``default`` and ``tool_use`` identical.

The harness's choice is compared with transformers' ``get_chat_template`` / ``apply_chat_template`` on the same
dir, with and without tools, and counted (``pytest -s`` prints the counts).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import InputError, SpecError, TokenizerError
from harness.generate import generate
from harness.renderers.hf import vllm_messages
from harness.renderers.jinja import dataset_messages
from harness.specs import build_renderer
from harness.tokenizer import load_tokenizer, read_chat_template, read_chat_templates
from harness.zoo import zoo_model_dir
from tests.test_fidelity import attempt, same

pytestmark = pytest.mark.real_tokenizer

QWEN25 = read_chat_template(zoo_model_dir("qwen2.5")) or ""
QWEN3 = read_chat_template(zoo_model_dir("qwen3")) or ""
N = 120  # conversations per fidelity count


def make_dir(root: Path, name: str, *, config: Any = ..., files: dict[str, str] | None = None) -> Path:
    """A copy of the zoo's Qwen2.5 dir; ``config`` replaces tokenizer_config's chat_template (``...`` keeps
    it), ``files`` maps template names to files (``default`` → chat_template.jinja, others → additional)."""
    d = root / name
    shutil.copytree(zoo_model_dir("qwen2.5"), d)
    (d / "chat_template.jinja").unlink(missing_ok=True)
    tc = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    if config is not ...:
        tc["chat_template"] = config
    (d / "tokenizer_config.json").write_text(json.dumps(tc), encoding="utf-8")
    for template_name, text in (files or {}).items():
        path = d / "chat_template.jinja" if template_name == "default" else \
            d / "additional_chat_templates" / f"{template_name}.jinja"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    assert QWEN25 and QWEN3 and QWEN25 != QWEN3
    root = tmp_path_factory.mktemp("multi")
    return {
        "list": make_dir(root, "list", config=[{"name": "default", "template": QWEN25},
                                               {"name": "tool_use", "template": QWEN3}]),
        "files": make_dir(root, "files", files={"default": QWEN25, "tool_use": QWEN3}),
        "nodefault": make_dir(root, "nodefault", config=[{"name": "rag", "template": QWEN25},
                                                         {"name": "tool_use", "template": QWEN3}]),
        "extra-only": make_dir(root, "extra-only", files={"tool_use": QWEN3}),
        "same": make_dir(root, "same", config=[{"name": "default", "template": QWEN25},
                                               {"name": "tool_use", "template": QWEN25}]),
    }


def hf_templates(tok: Any) -> dict[str, str]:
    """transformers' own reading of the dir: ``tokenizer.chat_template`` (a str is the ``default``)."""
    value = tok.hf.chat_template
    return {"default": value} if isinstance(value, str) else dict(value or {})


@pytest.mark.parametrize("layout", ["list", "files", "nodefault", "extra-only", "same"])
def test_named_templates_load_as_transformers_loads_them(dirs, layout):
    tok = load_tokenizer(dirs[layout])
    assert dict(tok.chat_templates) == hf_templates(tok) == read_chat_templates(dirs[layout])
    assert tok.chat_template == tok.chat_templates.get("default")
    if layout == "files":  # the files win over the config's own string
        assert tok.chat_templates["tool_use"] == QWEN3 and json.loads(
            (dirs[layout] / "tokenizer_config.json").read_text())["chat_template"] == QWEN25
    if layout == "extra-only":  # transformers drops the config's template once additional_chat_templates/ exists
        assert set(tok.chat_templates) == {"tool_use"} and tok.chat_template is None


def test_a_malformed_list_entry_is_named(tmp_path):
    d = make_dir(tmp_path, "bad", config=[{"name": "default", "template": QWEN25}, {"template": "x"}])
    with pytest.raises(TokenizerError, match=r"chat_template.*(fix that entry|list of \{\"name\")"):
        read_chat_templates(d)


@pytest.mark.parametrize("layout,option", [("list", None), ("list", "default"), ("list", "tool_use"),
                                           ("files", None), ("files", "tool_use"), ("nodefault", "rag"),
                                           ("nodefault", "tool_use"), ("same", None)])
def test_choice_and_renders_match_transformers(dirs, layout, option):
    """Per conversation: the template we pick == ``get_chat_template(name, tools)``, and every deploy prompt and
    training rendering == ``apply_chat_template`` on the same dir (text), counted with and without tools."""
    tok = load_tokenizer(dirs[layout])
    opt = f",template={option}" if option else ""
    deploy = build_renderer(f"hf:.{opt}", tok, side="deploy")
    train = build_renderer(f"jinja:.{opt}", tok, side="train")
    total, agree = Counter(), Counter()
    for conv in generate(N, seed=3, tools="any"):
        tools = conv.tool_dicts()
        kind = "tools" if tools is not None else "plain"
        total[kind] += 1
        theirs = tok.hf.get_chat_template(option, tools)
        ok = deploy.template_for(tools).source == theirs == train.template_for(tools).source
        for k in conv.assistant_indices:
            p = conv.prefix(k)
            ours_text = attempt(lambda: deploy.render_text(p))  # noqa: B023 - called at once
            hf_text = attempt(lambda: tok.hf.apply_chat_template(  # noqa: B023
                vllm_messages(p, deploy.content_format(p.tool_dicts())), tools=p.tool_dicts(),  # noqa: B023
                chat_template=option, add_generation_prompt=True,
                tokenize=False))
            ok = ok and same(ours_text, hf_text)
        ours_train = attempt(lambda: train.render_text(conv))  # noqa: B023
        hf_train = attempt(lambda: tok.hf.apply_chat_template(  # noqa: B023
            dataset_messages(conv), tools=tools, chat_template=option, tokenize=False))
        agree[kind] += ok and same(ours_train, hf_train)
    print(f"\n{layout:<10} template={option!s:<9} agree with tools {agree['tools']}/{total['tools']}, "
          f"without {agree['plain']}/{total['plain']}")
    assert total["tools"] > 20 and total["plain"] > 20
    assert agree == total


def test_no_default_is_refused_as_transformers_refuses(dirs):
    tok = load_tokenizer(dirs["nodefault"])
    with pytest.raises(ValueError, match="no default specified"):  # transformers, a request without tools
        tok.hf.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    for spec, side in (("hf:.", "deploy"), ("jinja:.", "train")):
        with pytest.raises(InputError) as err:
            build_renderer(spec, tok, side=side)
        msg = str(err.value)
        assert "'rag', 'tool_use'" in msg and "template=NAME" in msg and f"'{spec},template=rag'" in msg, msg
    with pytest.raises(InputError, match="additional_chat_templates/ exists"):
        build_renderer("hf:.", load_tokenizer(dirs["extra-only"]), side="deploy")


@pytest.mark.parametrize("spec,expected", [
    ("hf:.,template=nope", r"template='nope' is not a chat template .* its templates are 'default', 'tool_use'"),
    ("hf:.,template=true", r"template=true is not accepted; template takes the name of one of the model dir's"),
])
def test_template_option_is_validated(dirs, spec, expected):
    with pytest.raises(SpecError, match=expected):
        build_renderer(spec, load_tokenizer(dirs["list"]), side="deploy")


def test_template_option_on_a_file_is_refused(dirs, tmp_path):
    (tmp_path / "t.jinja").write_text(QWEN25, encoding="utf-8")
    with pytest.raises(SpecError, match="single template file"):
        build_renderer(f"hf:{tmp_path / 't.jinja'},template=default", load_tokenizer(dirs["list"]), side="deploy")


def test_hf_dir_argument_reads_every_named_template(dirs):
    """``hf:DIR`` (another model dir's templates) picks per request like ``hf:.``."""
    tok = load_tokenizer(dirs["same"])
    other = build_renderer(f"hf:{dirs['files']}", tok, side="deploy")
    assert other.template.source == QWEN25 and other.tool_template is not None and other.tool_template.source == QWEN3


def test_render_cache_keys_on_the_chosen_template(dirs):
    """The same conversation object (same message dicts) through two renderers that pick different templates."""
    tok = load_tokenizer(dirs["list"])
    conv = next(c for c in generate(50, seed=1, tools=True) if c.tools)
    plain = build_renderer("hf:.,template=default", tok, side="deploy")
    tool = build_renderer("hf:.", tok, side="deploy")
    first, second = plain.render_text(conv.prefix(1)), tool.render_text(conv.prefix(1))
    assert first != second
    assert second == tok.hf.apply_chat_template(vllm_messages(conv.prefix(1), tool.content_format(conv.tool_dicts())),
                                                tools=conv.tool_dicts(),
                                                add_generation_prompt=True, tokenize=False)
    assert plain.render_text(conv.prefix(1)) == first


def test_describe_records_the_named_templates(dirs):
    from harness.renderers._common import sha256_text

    desc = build_renderer("hf:.", load_tokenizer(dirs["list"]), side="deploy").describe()
    assert desc["named_templates"] == {"default": sha256_text(QWEN25), "tool_use": sha256_text(QWEN3)}
    assert desc["template_selection"] == {"without_tools": "default", "with_tools": "tool_use", "explicit": False}
    desc = build_renderer("jinja:.,template=default", load_tokenizer(dirs["list"]), side="train").describe()
    assert desc["template_selection"] == {"without_tools": "default", "with_tools": "default", "explicit": True}


def check(model_dir: Path, tmp_path: Path, *specs: str, tools: str, examples: int = 100) -> tuple[int, dict]:
    rep = tmp_path / f"rep-{len(list(tmp_path.iterdir()))}"
    code = main(["check", "--model-dir", str(model_dir), "--train", specs[0], *[a for s in specs[1:]
                 for a in ("--deploy", s)], "--examples", str(examples), "--tools", tools, "--report-dir", str(rep),
                 "--quiet"])
    report = json.loads((rep / "report.json").read_text()) if (rep / "report.json").is_file() else {}
    return code, report


@pytest.mark.parametrize("layout", ["list", "files"])
def test_trained_on_default_served_with_tool_use_diverges_only_with_tools(dirs, layout, tmp_path):
    """Training pinned to ``default``, vLLM serving the dir: tool requests get ``tool_use`` (Qwen3's template,
    which drops Qwen2.5's default system prompt) — inconsistent with tools, consistent without."""
    d = dirs[layout]
    code, report = check(d, tmp_path, "jinja:.,template=default", "hf:.", tools="off")
    assert code == 0, report
    code, report = check(d, tmp_path, "jinja:.,template=default", "hf:.", tools="on")
    assert code == 1
    failed = [c for c in report["targets"][0]["checks"] if c["verdict"] == "fail"]
    assert failed and all(c["counterexample"]["tools"] for c in failed), failed  # shrinking never drops tools


def test_identical_named_templates_are_consistent(dirs, tmp_path):
    code, report = check(dirs["same"], tmp_path, "jinja:.,template=default", "hf:.", tools="any")
    assert code == 0, report
    assert report["targets"][0]["verdict"] == "consistent"


def test_no_default_exits_2_in_the_cli(dirs, tmp_path, capsys):
    before = sorted(p.name for p in dirs["nodefault"].rglob("*"))
    code, _ = check(dirs["nodefault"], tmp_path, "jinja:.", "hf:.", tools="any", examples=5)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("error:") == 1 and "'rag', 'tool_use'" in err and "template=NAME" in err, err
    assert sorted(p.name for p in dirs["nodefault"].rglob("*")) == before
    code, report = check(dirs["nodefault"], tmp_path, "jinja:.,template=rag", "hf:.,template=rag", tools="any")
    assert code == 0, report


def test_tgi_takes_only_the_default_entry(dirs):
    """TGI's router keeps the list entry named ``default`` for every request (never ``tool_use``); without one it
    starts with no chat template, which the harness refuses with the names."""
    pytest.importorskip("minijinja", reason="pip install --no-deps -r requirements-engines.txt")
    renderer = build_renderer("tgi:.", load_tokenizer(dirs["list"]), side="deploy")
    assert renderer.template.source == QWEN25
    with pytest.raises(InputError, match=r"named 'rag', 'tool_use' and none named 'default'.*never picks 'tool_use'"):
        build_renderer("tgi:.", load_tokenizer(dirs["nodefault"]), side="deploy")
    with pytest.raises(InputError, match="none named 'default'"):
        build_renderer(f"tgi:{dirs['nodefault']}", load_tokenizer(dirs["list"]), side="deploy")
