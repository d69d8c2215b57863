"""Ollama's context fitting (``server/prompt.go`` ``chatPrompt``), applied when ``num_ctx`` is set.

The rule, as Ollama's server applies it before the template's prompt reaches the model: the request's
message list (the Modelfile's SYSTEM and MESSAGEs first) is rendered from message ``i`` on, for
``i = 0, 1, …``, with the system messages *before* ``i`` put back in front; the first ``i`` whose prompt
tokenises (``/tokenize``, special tokens parsed, no BOS added) to at most ``num_ctx`` ids is sent. If none
fits, only the system messages and the last message are sent. Images are not generated, so the 768 ids
Ollama counts per image never apply. The default ``num_ctx`` depends on the server (``OLLAMA_CONTEXT_LENGTH``,
VRAM: 4096 and up), so the harness fits only when the Modelfile says ``PARAMETER num_ctx N`` or the spec
``num_ctx=N``.

The runner then tokenises the chosen prompt with a BOS; past ``num_ctx - 1`` ids it either rejects the request
or cuts ids from the middle (context shift): ``Fit.overflow`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import InputError, RenderRejected

if TYPE_CHECKING:
    from harness.conversation import Conversation
    from harness.renderers.ollama.renderer import OllamaRenderer


@dataclass(frozen=True)
class Fit:
    """The request Ollama renders after fitting, the conversation message indices it sends, its id count."""

    request: dict[str, Any]
    text: str
    sent: tuple[int, ...]
    count: int
    overflow: bool


def parse_num_ctx(value: Any, where: str) -> int | None:
    """``PARAMETER num_ctx`` (or ``num_ctx=``) as a positive int; None when absent."""
    if value is None:
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n <= 0 or n > 1 << 24:
        raise InputError(f"{where}: num_ctx={value!r} is not a whole number of tokens from 1 to {1 << 24:,}; "
                         "write e.g. `PARAMETER num_ctx 4096`")
    return n


def fit(renderer: "OllamaRenderer", conv: "Conversation") -> Fit:
    """``chatPrompt``'s drop-oldest loop over ``renderer.request(conv)`` (system messages and the last kept)."""
    full = renderer.full_request(conv)
    msgs: list[dict[str, Any]] = full["messages"]
    head = len(msgs) - len(conv.messages)  # Modelfile SYSTEM / MESSAGE lines: not conversation messages
    index = [None] * head + list(range(len(conv.messages)))
    limit = renderer.num_ctx
    assert limit is not None
    last = len(msgs) - 1
    chosen: tuple[list[int], str] | None = None
    count = 0
    for i in range(last + 1):
        keep = [j for j in range(i) if msgs[j]["role"] == "system"] + list(range(i, last + 1))
        request = {**full, "messages": [msgs[j] for j in keep]}
        got = renderer._go.render([request])[0]
        if isinstance(got, RenderRejected):
            raise got
        count = len(renderer.tokenizer.encode(got))
        if count <= limit or i == last:
            chosen = (keep, got)
            break
    assert chosen is not None
    keep, text = chosen
    request = {**full, "messages": [msgs[j] for j in keep]}
    bos = 1 if renderer.add_bos and renderer.tokenizer.bos_id is not None else 0
    return Fit(request, text, tuple(index[j] for j in keep if index[j] is not None), count,
               count + bos > limit - 1)
