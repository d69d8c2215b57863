"""Load a Hugging Face tokenizer from a model dir, offline, and prove its ids are trustworthy.

``load_tokenizer(dir)`` reads ``tokenizer.json`` with the raw ``tokenizers`` library and proves, once per
set of files, that ``transformers.AutoTokenizer`` (what vLLM/TRL use) gives the same ids and special
tokens; the proof is cached, so later loads import no transformers. The model dir is only read.
Modules: ``load`` (loading and verification), ``verified`` (the proof cache), ``core`` (``Tokenizer``),
``fast`` (piece-wise encoding), ``files`` (config files and chat templates), ``probes``.

>>> tok = load_tokenizer("path/to/model")          # doctest: +SKIP
>>> tok.encode("Hello"), tok.piece(tok.eos_id)     # doctest: +SKIP
([9707], '<|im_end|>')
"""

from __future__ import annotations

from harness.tokenizer.core import Specials, Tokenizer
from harness.tokenizer.fast import _CHUNK_PROBES, _SPLIT_PROBES
from harness.tokenizer.files import (
    check_config_files, read_chat_template, read_chat_templates, sha256_file, special_token_names,
)
from harness.tokenizer.load import check_ids_agree, clear_tokenizer_cache, load_tokenizer
from harness.tokenizer.probes import PROBES

__all__ = [
    "PROBES", "Specials", "Tokenizer", "check_config_files", "check_ids_agree", "clear_tokenizer_cache",
    "load_tokenizer", "read_chat_template", "read_chat_templates", "sha256_file", "special_token_names",
]
_ = (_CHUNK_PROBES, _SPLIT_PROBES)  # re-exported for the self-tests
