"""Qwen2.5 trained by PaddleNLP with a ChatML chat_template.json, served by vLLM with the model's own template.

Expected verdict: consistent. The only finding is the segments warning PaddleNLP's per-part encoding gives
(an answer whose text merges with the token before it when served as one string: data-dependent)."""

from pathlib import Path

from harness.plugin import gate

TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures/paddlenlp/qwen2.5_chatml_chat_template.json"

test_qwen25_paddlenlp_chatml_vs_vllm = gate(model="qwen2.5", train=f"paddlenlp:{TEMPLATE}", deploy=["hf:."],
                                            examples=300)
