"""template-harness: prove a fine-tuned model is prompted at serving time exactly as in training."""

import os as _os

# Offline by design: never reach a model hub; no torch advice on import (templates need no torch).
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from harness.api import DEFAULT_MODEL, check, load_model, make_pair, make_pairs
from harness.checks import CHECKS, Failure, Pair
from harness.conversation import Conversation, Message, Tool, ToolCall
from harness.diff import TokenDiff
from harness.errors import (ConversationError, HarnessError, InputError, RenderRejected, SpecError, TemplateError,
                            TokenizerError, ZooError)
from harness.parsers import (ParsedCall, ParsedOutput, ReasoningParser, ToolParser, build_reasoning_parser,
                             build_tool_parser)
from harness.renderers.base import Encoded, Renderer
from harness.runner import CheckResult, TargetResult, run_pair
from harness.specs import build_renderer, parse_spec

__version__ = "0.1.0"

__all__ = [
    "CHECKS", "CheckResult", "Conversation", "ConversationError", "DEFAULT_MODEL", "Encoded", "Failure",
    "HarnessError", "InputError", "Message", "Pair", "ParsedCall", "ParsedOutput", "ReasoningParser",
    "RenderRejected", "Renderer", "SpecError", "TargetResult", "TemplateError", "TokenDiff", "TokenizerError",
    "Tool", "ToolCall", "ToolParser", "ZooError", "build_reasoning_parser", "build_renderer", "build_tool_parser",
    "check", "load_model", "make_pair", "make_pairs", "parse_spec", "run_pair", "__version__"
]
