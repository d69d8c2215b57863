"""Build an engine's output parser by name: vLLM's ``--tool-call-parser`` / ``--reasoning-parser`` names (also
written ``vllm:NAME``) and ``llamafactory:FORMAT`` (LLaMA-Factory's tool extractors).

The name lists are static so that option validation needs no engine import (vLLM takes ~20 s); the tests prove
they equal what vLLM 0.33.0 and LLaMA-Factory 0.9.5 register. Whether a parser works for a model is decided when
it is built: one that needs tokens the tokenizer lacks raises SpecError naming parser, model and what is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import SpecError
from harness.parsers.base import ReasoningParser, ToolParser

if TYPE_CHECKING:
    from harness.tokenizer import Tokenizer

#: ``vllm.tool_parsers.ToolParserManager.list_registered()`` of vLLM 0.33.0.
VLLM_TOOL_PARSERS: tuple[str, ...] = (
    "apertus", "beam", "cohere_command3", "cohere_command4", "deepseek_v3", "deepseek_v31", "deepseek_v32",
    "deepseek_v4", "deepseek_v41", "dots", "ernie45", "functiongemma", "gemma4", "gigachat3", "glm45", "glm47",
    "granite", "granite-20b-fc", "granite4", "hermes", "hf", "hunyuan_a13b", "hy_v3", "hy_v4", "inkling",
    "internlm", "jamba", "k2_horizon", "kimi_k2", "kimi_k3", "lfm2", "ling3", "llama3_json", "llama4_json",
    "llama4_pythonic", "longcat", "mimo", "minicpm5", "minimax_m2", "minimax_m3", "mistral", "muse",
    "muse_glimmer", "musespark1x", "olmo3", "openai", "phi4_mini_json", "plamo3", "poolside_v1", "pythonic",
    "qwen3_coder", "qwen3_json", "qwen3_xml", "seed_oss", "step3", "step3p5", "step5", "xlam",
)
#: ``vllm.reasoning.ReasoningParserManager.list_registered()`` of vLLM 0.33.0.
VLLM_REASONING_PARSERS: tuple[str, ...] = (
    "beam", "cohere_command3", "cohere_command4", "deepseek_r1", "deepseek_v3", "deepseek_v4", "deepseek_v41",
    "ernie45", "gemma4", "glm45", "glm47", "granite", "granite_thinking_parser", "hf", "holo2", "hunyuan_a13b",
    "hy_v3", "hy_v4", "inkling", "k2_horizon", "kimi_k2", "kimi_k3", "ling3", "mimo", "minicpmv", "minimax_m2",
    "minimax_m2_append_think", "minimax_m3", "mistral", "muse", "muse_glimmer", "musespark1x", "nemotron_v3",
    "olmo3", "openai_gptoss", "plamo3", "poolside_v1", "qwen3", "seed_oss", "step3", "step3p5", "step5",
)
#: ``llamafactory.data.tool_utils.TOOLS`` of LLaMA-Factory 0.9.5.
LLAMAFACTORY_FORMATS: tuple[str, ...] = (
    "default", "gemma4", "glm4", "glm4_moe", "lfm2", "ling", "llama3", "minimax1", "minimax2", "mistral", "qwen",
    "qwen3_5", "seed_oss",
)

TOOL_PARSER_NAMES: tuple[str, ...] = VLLM_TOOL_PARSERS + tuple(f"llamafactory:{f}" for f in LLAMAFACTORY_FORMATS)
REASONING_PARSER_NAMES: tuple[str, ...] = VLLM_REASONING_PARSERS


def _vllm_name(name: str, known: tuple[str, ...]) -> str | None:
    bare = name[len("vllm:"):] if name.startswith("vllm:") else name
    return bare if bare in known else None


def build_tool_parser(name: str, tokenizer: "Tokenizer", **kwargs: Any) -> ToolParser:
    """The tool parser ``name`` for a model served with ``tokenizer``; SpecError for an unknown name or a parser
    this model's tokenizer cannot run (kwargs: ``chat_template_kwargs`` for vLLM parsers)."""
    if name.startswith("llamafactory:"):
        from harness.parsers.llamafactory import LlamaFactoryToolParser

        return LlamaFactoryToolParser(name[len("llamafactory:"):])
    bare = _vllm_name(name, VLLM_TOOL_PARSERS)
    if bare is None:
        raise SpecError(f"tool parser {name!r} is unknown; use one of {', '.join(TOOL_PARSER_NAMES)}")
    from harness.parsers.vllm import VllmToolParser

    return VllmToolParser(bare, tokenizer, **kwargs)


def build_reasoning_parser(name: str, tokenizer: "Tokenizer", **kwargs: Any) -> ReasoningParser:
    """The reasoning parser ``name`` (vLLM's ``--reasoning-parser``) for ``tokenizer``; SpecError as above."""
    bare = _vllm_name(name, VLLM_REASONING_PARSERS)
    if bare is None:
        raise SpecError(f"reasoning parser {name!r} is unknown; use one of {', '.join(REASONING_PARSER_NAMES)} "
                        "(LLaMA-Factory's API server does not separate reasoning: its thought words stay in content)")
    from harness.parsers.vllm import VllmReasoningParser

    return VllmReasoningParser(bare, tokenizer, **kwargs)
