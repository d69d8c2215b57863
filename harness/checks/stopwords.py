"""``stop-words``: the id training taught the model to end each answer with is one the deploy side stops on.

Training side. ``llamafactory:`` — the template's stop words and eos *after* LLaMA-Factory's fix-up
(``replace_eos`` makes the first stop word the tokenizer eos and adds the rest as special tokens; it never
rewrites ``generation_config.json``, hiyouga/LLaMA-Factory#9338), read from the renderer's ``stop_ids``;
``jinja:`` — the tokenizer eos. Deploy side: ``stop_ids`` (generation_config eos ids, tokenizer eos,
Modelfile ``PARAMETER stop``, LMDeploy ``stop_words``).

What an answer is trained to end with is read from the labels, not the input ids: LLaMA-Factory's raw
labels (``extra["label_ids"]``) put an ``efficient_eos`` template's eos (``glm4``, ``llama2``…) on the
*next prompt's first position* for a non-final answer (the eos is never an input id there), and on the
appended eos for the final answer. The stream of answer ``k`` is its labelled ids plus that follow-up
label; its end id is the first id of the stream in (training stops ∪ deploy stops), else its last special
(control) token, else its last id.

* error (cause ``stop-mismatch``) — an end id is not a deploy stop: the served model runs past the end of its
  answer (structural, computed once per conversation shape on the plain-text variant). The fix advised
  (``harness.checks.stopadvice``): add the id to ``eos_token_id`` only when it is a control (added) token;
  an answer ending in plain text has no dedicated end token, so the advice is an end token in the template
  or engine stop strings quoting the text that ends or follows each answer in the training rendering.
* warning (cause ``stop-heuristic``) — an Ollama Modelfile does not declare the end id; only llama.cpp's
  end-of-generation heuristic stops there.
* warning (cause ``stop-inside-answer``) — this conversation's answer carries more deploy-stop ids than the
  plain variant of the same shape (special-token text inside an answer, encoded as the control id): the
  served model stops early.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.checks import stopadvice
from harness.checks.base import IGNORE, Case, Check, Failure, Skip, label_stream  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from harness.checks.base import Pair



@dataclass(frozen=True)
class _Static:
    """Per pair: the two stop sets and what the training side did to the tokenizer."""

    train_stops: frozenset[int]
    deploy_stops: frozenset[int]
    special: frozenset[int]  # the tokenizer's special (control) token ids
    note: str  # replace_eos / efficient_eos context for explanations
    declared: frozenset[int] | None = None  # stops the deploy config declares itself (Ollama: PARAMETER stop)


@dataclass(frozen=True)
class _End:
    """Per answer of a plain-variant conversation: the end id and how many deploy stops its stream holds."""

    message: int
    end_id: int | None
    follow_up: bool  # the end id is the label after the answer (efficient_eos)
    deploy_hits: int
    tail: tuple[int, ...]


def _static(pair: "Pair") -> _Static:
    return pair.cache.per_pair("stop_static", lambda: _read_static(pair))


def _read_static(pair: "Pair") -> _Static:
    deploy_stops = pair.deploy.stop_ids
    train_stops = pair.train.stop_ids
    train = pair.train
    notes = []
    if train.replaced_eos:
        before, after = train.replaced_eos
        notes.append(f"LLaMA-Factory's replace_eos changed the tokenizer eos from {before!r} to {after!r} "
                     "but never rewrites generation_config.json (hiyouga/LLaMA-Factory#9338)")
    if train.template_stop_words:
        notes.append(f"template stop words {list(train.template_stop_words)}")
    if train.efficient_eos:
        notes.append("efficient_eos: a non-final answer's eos is trained only as the label of the next prompt's "
                     "first id")
    tok = pair.tokenizer
    special = frozenset(tok.added_tokens[t] for t in tok.special_tokens if t in tok.added_tokens)
    declared = pair.deploy.declared_stop_ids
    return _Static(train_stops, frozenset(deploy_stops), special, "; ".join(notes), declared)


def _ends(case: Case, static: _Static) -> tuple[_End, ...]:
    stops = static.train_stops | static.deploy_stops
    out = []
    for ans in case.train.answers:
        stream = label_stream(case.train, ans)
        end = next(((i, f) for _, i, f in stream if i in stops), None)
        if end is None:  # no stop id: the last control token the answer ends with, else its last id
            end = next(((i, f) for _, i, f in reversed(stream) if i in static.special), None)
        if end is None and stream:
            end = (stream[-1][1], stream[-1][2])
        hits = sum(1 for _, i, _ in stream if i in static.deploy_stops)
        out.append(_End(ans.message, end[0] if end else None, bool(end and end[1]), hits,
                        tuple(i for _, i, _ in stream[-4:])))
    return tuple(out)


def _structural(case: Case, static: _Static) -> tuple[tuple[_End, ...], Failure | None]:
    """End ids of the plain variant of ``case.conv`` (cached per plain variant) and the error, if any."""
    return case.pair.cache.per_shape("stop-words", case.plain_key(case.conv),
                                     lambda: _structural_plain(case.plain(case.conv), static))


def _structural_plain(plain: Case, static: _Static) -> tuple[tuple[_End, ...], Failure | None]:
    pair = plain.pair
    ends = _ends(plain, static)
    failure = None
    for e in ends:
        if e.end_id is None or e.end_id in static.deploy_stops:
            continue
        piece = functools.partial(stopadvice.piece, pair)
        deploy = ", ".join(f"{i} {piece(i)!r}" for i in sorted(static.deploy_stops)) or "nothing"
        how = "as the label after the answer (efficient_eos)" if e.follow_up else "as its end-of-turn id"
        if stopadvice.is_control(pair, e.end_id) or e.end_id in static.train_stops:
            where = "one of the training stop ids" if e.end_id in static.train_stops else \
                "not a stop id on either side: the answer's last control token"
            said = f"is trained to end with {e.end_id} {piece(e.end_id)!r} {how} ({where})"
        else:
            said = f"ends in plain text (no stop id at all: its last trained id is {e.end_id} {piece(e.end_id)!r})"
        failure = Failure(
            "stop-words", "error",
            f"answer messages[{e.message}] {said}, but the deploy side stops only on [{deploy}]: the served model "
            f"will not stop where training taught it and runs on into a new turn. {stopadvice.advice(pair, e.end_id)}"
            + (f". Context: {static.note}" if static.note else ""),
            plain.conv, message=e.message,
            tokens={"end_id": {"id": e.end_id, "piece": piece(e.end_id)}, "answer_end": plain.pieces(e.tail),
                    "train_stops": plain.pieces(sorted(static.train_stops)),
                    "deploy_stops": plain.pieces(sorted(static.deploy_stops))},
            cause="stop-mismatch")
        break
    if failure is None and static.declared is not None:
        failure = _undeclared(plain, ends, static)
    return ends, failure


def _undeclared(plain: Case, ends: tuple[_End, ...], static: _Static) -> Failure | None:
    """Warning: the engine stops on the trained end id only by its own heuristic, not because the deploy
    config (an Ollama Modelfile's PARAMETER stop) declares it."""
    piece = plain.pair.tokenizer.piece
    for e in ends:
        if e.end_id is None or e.end_id in static.declared or e.end_id not in static.deploy_stops:
            continue
        declared = ", ".join(f"{i} {piece(i)!r}" for i in sorted(static.declared)) or "nothing"
        return Failure(
            "stop-words", "warning",
            f"answer messages[{e.message}] is trained to end with {e.end_id} {piece(e.end_id)!r}, which the deploy "
            f"config does not declare as a stop (it declares [{declared}]): the served model stops there only "
            "because llama.cpp recognises that token as end-of-generation by name; a runner without that heuristic "
            f"never stops (ollama/ollama#8363). Add PARAMETER stop \"{piece(e.end_id)}\" to the Modelfile",
            plain.conv, message=e.message,
            tokens={"end_id": {"id": e.end_id, "piece": piece(e.end_id)},
                    "declared_stops": plain.pieces(sorted(static.declared))},
            cause="stop-heuristic")
    return None


def stop_words(case: Case) -> Failure | None:
    """Training's end-of-answer ids are deploy stops (error), and answers hold no extra deploy stops (warning)."""
    static = _static(case.pair)
    train = case.train
    if not train.answers:
        return None
    ends, failure = _structural(case, static)
    if failure is not None:
        return failure
    if len(ends) != len(train.answers):
        return None
    for ans, base in zip(train.answers, ends):
        stream = label_stream(train, ans)
        hits = [(j, i) for j, i, _ in stream if i in static.deploy_stops]
        if len(hits) <= base.deploy_hits:
            continue
        j, i = hits[0]
        return Failure("stop-words", "warning",
                       f"answer messages[{ans.message}] is trained to emit the deploy stop id {i} "
                       f"{case.pair.tokenizer.piece(i)!r} inside its text (at token {j}; special-token text in the "
                       "answer is encoded as the control id): served, the model stops there, before the answer ends",
                       case.conv, message=ans.message,
                       tokens={"premature": case.pieces([i for _, i in hits]),
                               "deploy_stops": case.pieces(sorted(static.deploy_stops))},
                       cause="stop-inside-answer")
    return None


def describe_ends(case: Case) -> list[dict[str, Any]]:
    """For reports and tests: each answer's end id as this check sees it (on ``case.conv`` itself)."""
    static = _static(case.pair)
    return [{"message": e.message, "end_id": e.end_id, "follow_up": e.follow_up, "deploy_stop": e.end_id in static.deploy_stops}
            for e in _ends(case, static)]


CHECKS = (Check("stop-words", stop_words,
                "the id training ends each answer with (stop words, eos after LLaMA-Factory's fix-up, efficient_eos "
                "labels) is a deploy stop; answers hold no extra deploy stops"),)
