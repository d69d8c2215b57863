"""TokenDiff's matcher gives difflib's own opcodes (it is only faster): random id streams, streams built from
repeated template-like blocks, and real Qwen2.5 renders of generated conversations against a planted template."""

from __future__ import annotations

import difflib
import random
from pathlib import Path

from harness.diff import _Matcher

ROOT = Path(__file__).resolve().parent.parent


def _difflib(a, b):
    return difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()


def _edited(rng: random.Random, blocks: list[list[int]], alphabet: int) -> tuple[list[int], list[int]]:
    a = [x for _ in range(rng.randint(0, 40)) for x in rng.choice(blocks)]
    b = list(a)
    for _ in range(rng.randint(0, 10)):
        p = rng.randint(0, len(b))
        op = rng.randrange(3)
        if op == 0:
            b[p:p] = rng.choice(blocks)
        elif op == 1:
            del b[p:p + rng.randint(1, 12)]
        elif b:
            b[min(p, len(b) - 1)] = rng.randrange(alphabet + 2)
    return (b, a) if rng.random() < 0.5 else (a, b)


def test_matcher_opcodes_equal_difflib_on_random_streams():
    rng = random.Random(7)
    for _ in range(1500):
        alphabet = rng.randint(1, 6)
        blocks = [[rng.randrange(alphabet) for _ in range(rng.randint(1, 14))] for _ in range(rng.randint(1, 5))]
        a, b = _edited(rng, blocks, alphabet)
        if rng.random() < 0.2:  # unrelated streams too
            b = [rng.randrange(alphabet) for _ in range(rng.randint(0, 80))]
        assert _Matcher(a, b).get_opcodes() == _difflib(a, b), (a, b)


def test_matcher_ties_pick_the_first_run_in_a_then_b():
    run = list(range(40))
    a = [99, *run, 98, *run]
    b = [97, *run, 96, *run, 95]
    assert _Matcher(a, b).find_longest_match(0, len(a), 0, len(b)) == (1, 1, 40)
    assert _Matcher(a, b).get_opcodes() == _difflib(a, b)


def test_matcher_opcodes_equal_difflib_on_real_prompts(qwen):
    from harness.api import make_pair
    from harness.generate import generate

    pair = make_pair(qwen, "jinja:" + str(ROOT / "fixtures/planted/prompt_newline.jinja"), "hf:.")
    compared = 0
    for conv in generate(40, seed=5, tools="any"):
        case = pair.case(conv)
        for ans in case.train.answers:
            a, b = case.train.ids[:ans.start], case.prompt(ans.message).ids
            assert _Matcher(a, b).get_opcodes() == _difflib(a, b)
            compared += 1
    assert compared > 40
