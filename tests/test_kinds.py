"""The one Kind registry and the one option rule: every path that reads an option refuses what a spec refuses."""

from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.options import LIMITS, check_options, limits_of
from harness.renderers.base import DeployRenderer, TrainRenderer
from harness.specs import KINDS, build_renderer, parse_spec
from tests.conftest import needs_lf


def test_every_kind_is_one_complete_entry():
    for name, kind in KINDS.items():
        assert kind.name == name and kind.help and set(kind.sides) <= {"train", "deploy"}, kind
        assert all(option.accepted for option in kind.options.values()), name


@pytest.mark.parametrize("value", [True, False, 0, -1, "soon", float("inf")])
def test_limits_refuse_what_a_spec_refuses(value):
    """``timeout=true`` was read as 1 s by ``limits_of`` (``float(True)``) while the spec path refused it."""
    with pytest.raises(SpecError, match="timeout="):
        check_options("jinja", "jinja:.,timeout=x", {"timeout": value}, LIMITS)
    with pytest.raises(SpecError, match="timeout="):
        limits_of({"timeout": value})


def test_limits_keep_accepted_values():
    assert limits_of({"timeout": 1.5, "max_output": 10, "max_memory": 2}).timeout == 1.5
    assert limits_of({}, 7.0).timeout == 7.0


def test_unknown_kind_lists_every_registered_kind(qwen):
    with pytest.raises(SpecError) as err:
        build_renderer("vllm:.", qwen, side="deploy")
    assert all(name in str(err.value) for name in KINDS)


def test_built_renderers_honour_their_side_contract(qwen):
    assert isinstance(build_renderer("hf:.", qwen, side="deploy"), DeployRenderer)
    assert isinstance(build_renderer("jinja:.", qwen, side="train"), TrainRenderer)
    assert build_renderer("hf:.,max_model_len=64", qwen, side="deploy").context_limit.name == "max_model_len"
    assert build_renderer("hf:.", qwen, side="deploy").context_limit is None
    assert str(parse_spec("hf:.,timeout=2")) == "hf:.,timeout=2"


@needs_lf
@pytest.mark.parametrize("options", [{"cutoff_len": True}, {"mask_history": 1}, {"cutof_len": 5}])
def test_llamafactory_options_follow_the_one_rule(qwen, options):
    """LLaMA-Factory re-checked options with its own rules: ``cutoff_len=True`` passed as a cut-off of 1 id."""
    from harness.renderers.llamafactory.renderer import LlamaFactoryRenderer

    with pytest.raises(SpecError, match="not accepted|unknown option"):
        LlamaFactoryRenderer("llamafactory:qwen", qwen, "qwen", options)


def test_checked_template_variables_still_reach_the_template(qwen):
    """``enable_thinking`` is both checked (true|false) and passed on; the kind's own options are not."""
    train = build_renderer("jinja:.,enable_thinking=false,foo=1,timeout=3,max_length=64", qwen, side="train")
    assert train.template_kwargs == {"enable_thinking": False, "foo": 1}
    deploy = build_renderer("hf:.,enable_thinking=true,max_model_len=64", qwen, side="deploy")
    assert deploy.template_kwargs == {"enable_thinking": True}
