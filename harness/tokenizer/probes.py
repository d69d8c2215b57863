"""The probe corpus on which AutoTokenizer and tokenizer.json must give the same ids."""

from __future__ import annotations

#: Texts on which AutoTokenizer ids must equal raw ``tokenizers`` ids (plus each model's special tokens).
PROBES: tuple[str, ...] = (
    "Hello, world!",
    "two  spaces and   three",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "\nleading newline",
    "trailing newline\n",
    "\n\n",
    "a\n\nb\n\n\nc",
    "\ttab\t and \t\tmixed \t",
    "\r\nwindows\r\n",
    "你好世界",
    "中文 English 混合，标点。",
    "🙂👍🏽",
    "emoji🙂inside👨‍👩‍👧 text",
    "def f(x):\n    return x * 2  # doubled\n",
    '{"name": "get_weather", "arguments": {"city": "Paris", "n": 3}}',
    "12345 678.9 1e10 2024-07-26",
    "ÿ€ é ß Ж ض \u00a0nbsp \u200bzwsp",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>\n</think>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "[gMASK]<sop><|user|>\nhi<|assistant|>",
    "<s>[INST] hi [/INST] ok</s>",
)
