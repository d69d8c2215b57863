"""What the harness changes around LLaMA-Factory's own code (never its results): a private template copy,
recorders of the slots it encodes, and plain ``encode`` calls answered by the (cached, audited) harness tokenizer."""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING, Any

from harness.errors import SpecError

if TYPE_CHECKING:
    from harness.tokenizer import Tokenizer

_LOCK = threading.Lock()


class CachedEncode:
    """The private transformers tokenizer, except that plain ``encode`` goes through the harness tokenizer."""

    def __init__(self, hf: Any, tokenizer: "Tokenizer") -> None:
        self._hf, self._encode = hf, tokenizer.encode

    def encode(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> list[int]:
        if add_special_tokens or kwargs:
            return self._hf.encode(text, add_special_tokens=add_special_tokens, **kwargs)
        return self._encode(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hf, name)


def token_state(hf: Any) -> dict[str, Any]:
    return {"eos_token": hf.eos_token, "eos_token_id": hf.eos_token_id, "pad_token": hf.pad_token,
            "added": sorted(str(t) for t in hf.get_added_vocab()), "vocab_size": len(hf)}


def fixed_template(lf: Any, hf: Any, data_args: Any, spec: str) -> Any:
    """The real ``get_template_and_fix_tokenizer`` on a private copy of the registered template."""
    name = data_args.template
    with _LOCK:
        if name is None:
            return lf.get_template_and_fix_tokenizer(hf, data_args)
        original = lf.TEMPLATES[name]
        lf.TEMPLATES[name] = copy.deepcopy(original)
        try:
            return lf.get_template_and_fix_tokenizer(hf, data_args)
        except ValueError as exc:
            raise SpecError(f"spec={spec!r}: LLaMA-Factory refuses this set-up: {exc}") from None
        finally:
            lf.TEMPLATES[name] = original


def install_recorders(template: Any, log: list, pairs: list) -> None:
    """Record each message's slot elements (``log``) and the (prompt, response) ``pairs`` as LLaMA-Factory makes them."""
    cls = type(template)

    def convert(tokenizer: Any, elements: Any) -> list[int]:
        ids = cls._convert_elements_to_ids(template, tokenizer, elements)
        log.append((list(elements), list(ids)))
        return ids

    def multiturn(*args: Any, **kwargs: Any) -> Any:
        out = cls.encode_multiturn(template, *args, **kwargs)
        pairs[:] = [(list(a), list(b)) for a, b in out]
        return out

    template._convert_elements_to_ids = convert
    template.encode_multiturn = multiturn
