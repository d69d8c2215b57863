"""``harness lf-table``: LLaMA-Factory templates vs their models' own templates (as vLLM serves them) → Markdown.

For every LLaMA-Factory template whose model tokenizer is in the zoo, run ``llamafactory:NAME`` against
``hf:.`` over N generated conversations (the same generator, options and seed as ``harness check``, so
each row is reproduced by the command printed beside it) and write one Markdown document: a verdict
table, then one row per failing check with its minimal counterexample, the first divergence and a
one-line cause. Causes are diagnosed rules (template, check, what the divergence looks like); a failure
no rule recognises is written as *undiagnosed* rather than guessed. Same seed → byte-identical document
(no timestamps, no timings).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

#: (LLaMA-Factory template, zoo model whose tokenizer and chat template it is meant for)
ROWS: tuple[tuple[str, str], ...] = (
    ("qwen", "qwen2.5"),
    ("qwen3", "qwen3"),
    ("qwen3_nothink", "qwen3"),
    ("glm4", "glm4"),
    ("deepseek3", "deepseek-v3"),
    ("deepseekr1", "deepseek-r1"),
    ("llama3", "llama3"),
    ("mistral", "mistral-v3"),
)
DEPLOY = "hf:."
DEFAULT_OUT = Path("docs/llamafactory.md")


@dataclass(frozen=True)
class Cause:
    """A diagnosed divergence: applies when ``template`` and one of ``checks`` match and ``test(headline,
    failure)`` holds."""

    template: str
    checks: tuple[str, ...]
    test: Callable[[str, object], bool]
    text: str


def _has(*needles: str) -> Callable[[str, object], bool]:
    return lambda head, failure: all(n in head for n in needles)


def _explains(*needles: str) -> Callable[[str, object], bool]:
    return lambda head, failure: all(n in failure.explanation for n in needles)  # type: ignore[attr-defined]


def _empty_system(head: str, failure: object) -> bool:
    conv = failure.conversation  # type: ignore[attr-defined]
    return conv.system == ""


#: Each was found by reading the real divergence (the counterexample rendered by both sides).
CAUSES: tuple[Cause, ...] = (
    Cause("qwen", ("prompt-prefix", "system"), lambda h, f: _empty_system(h, f) and "'You'" in h,
          "LF trains `system or default_system`: an explicit empty system becomes LF's default "
          "\"You are Qwen, created by Alibaba Cloud…\", while the Qwen2.5 template writes an empty system block"),
    Cause("qwen3", ("prompt-prefix",), _has("'<think>'", "'<|im_end|>'"),
          "LF's ReasoningTemplate (enable_thinking=true) adds an empty `<think>\\n\\n</think>\\n\\n` to every "
          "answer, history included, while the Qwen3 template drops reasoning from answers before the last user "
          "turn: from the second answer on the served prompt lacks the think block training had"),
    Cause("qwen3", ("system",), lambda h, f: _empty_system(h, f) and "'system'" in h,
          "LF treats an empty system as no system (`system or default_system`, default empty) and writes no "
          "system block; the Qwen3 template writes `<|im_start|>system\\n<|im_end|>\\n` for an empty one"),
    Cause("qwen3_nothink", ("prompt-prefix", "system"), lambda h, f: _empty_system(h, f) and "'system'" in h,
          "LF treats an empty system as no system and writes no system block; the Qwen3 template writes "
          "`<|im_start|>system\\n<|im_end|>\\n` for an empty one"),
    Cause("qwen3", ("prompt-prefix",), _has("'␤␤␤'", "'␤'"),
          "with tools and no system message LF's qwen tool format appends `\\n\\n# Tools…` to the empty system "
          "text (`<|im_start|>system\\n\\n\\n# Tools`); the Qwen3 template writes `<|im_start|>system\\n# Tools` "
          "(the blank line only after a system message's text)"),
    Cause("qwen3_nothink", ("prompt-prefix",), _has("'␤␤␤'", "'␤'"),
          "with tools and no system message LF's qwen tool format appends `\\n\\n# Tools…` to the empty system "
          "text (`<|im_start|>system\\n\\n\\n# Tools`); the Qwen3 template writes `<|im_start|>system\\n# Tools` "
          "(the blank line only after a system message's text)"),
    Cause("glm4", ("special-tokens",), _explains("'<|tool|>'"),
          "the GLM-4 template prints `<|{{ item['role'] }}|>` verbatim, so an OpenAI `tool` result becomes the "
          "plain text `<|tool|>` (not a GLM-4 token; LF writes the `<|observation|>` token), and the call-only "
          "assistant turn before it is skipped as empty content"),
    Cause("deepseek3", ("prompt-prefix", "system"), _has("'You'", "'<｜User｜>'"),
          "LF's deepseek3 (default ReAct tool format) writes the tool list as system text (\"You have access to "
          "the following tools:…\"); the DeepSeek-V3 template ignores `tools`, so the served prompt has none"),
    Cause("deepseekr1", ("special-tokens",), _explains("TypeError", "concatenate str"),
          "the DeepSeek-R1 template concatenates `tool['function']['arguments']` as a string, but vLLM passes the "
          "arguments parsed to a dict: any prompt with a tool call in its history raises TypeError when served"),
    Cause("llama3", ("special-tokens",), _explains("single tool-calls"),
          "Meta's Llama-3.2 template raises \"This model only supports single tool-calls at once!\" on parallel "
          "calls, which LF's llama3 trains (a JSON list of calls)"),
    Cause("mistral", ("prompt-prefix",), lambda h, f: "'␠'" in h and any(
          m.role == "assistant" and m.content and m.content != m.content.strip()
          for m in f.conversation.messages),  # type: ignore[attr-defined]
          "the Mistral v3 template `trim`s an assistant answer when it comes back as history; LF keeps it verbatim "
          "(`' ' + content`), so an answer with leading/trailing whitespace is served back differently"),
    Cause("glm4", ("prompt-prefix", "system"), _has("'<|user|>'", "'<|assistant|>'"),
          "the GLM-4 template skips every message whose content is empty (`{% if item['content'] %}`), so an "
          "empty user turn vanishes when served; LF always writes `<|user|>\\n` + content"),
    Cause("deepseekr1", ("prompt-prefix", "system"), _has("<end>", "'<think>'"),
          "the DeepSeek-R1 template's generation prompt is `<｜Assistant｜><think>\\n`; LF's deepseekr1 puts "
          "`<think>` in the trained answer, so the served prompt ends with a `<think>\\n` training never had there"),
    Cause("llama3", ("prompt-prefix", "system"), _has("'user'", "'system'"),
          "Meta's Llama-3.2 template always writes a system block (`Cutting Knowledge Date: December 2023` + "
          "`Today Date: …`) even without a system message; LF's llama3 writes none"),
    Cause("mistral", ("prompt-prefix", "system"), _has("'[/INST]'", "'␤'"),
          "LF's mistral drops an empty system (`system or default_system`); the Mistral v3 template writes "
          "`system + \"\\n\\n\"` before the last user message even when the system text is empty"),
)

#: Failures that are harness bugs, not template divergences (reported, never presented as a cause). Empty:
#: the one found (answer-stop ignoring efficient_eos labels) is fixed in harness/checks/stop.py.
HARNESS_BUGS: tuple[Cause, ...] = ()


#: Why LLaMA-Factory drops some generated conversations (counted, not failed), read off its own exceptions.
REJECTS: dict[str, str] = {
    "glm4": "LF's glm4 tool format raises \"GLM-4 does not support parallel functions.\"",
    "mistral": "LF 0.9.5's Llama2Template._encode calls `format_function.apply(content=...)` without "
               "`tool_call_words`, so an assistant turn with text beside its tool call fails LF's JSON parse",
}


def diagnose(template: str, check: str, failure: object) -> str:
    diff = getattr(failure, "diff", None)
    head = diff.headline() if diff is not None and diff.index is not None else ""
    for cause in HARNESS_BUGS + CAUSES:
        if cause.template == template and check in cause.checks and cause.test(head, failure):
            return cause.text
    return "undiagnosed: no known cause matches this divergence; read the counterexample"


def command(model: str, template: str, examples: int, seed: int) -> str:
    return (f"harness check --model {model} --train llamafactory:{template} --deploy {DEPLOY} "
            f"--examples {examples} --seed {seed}")


def run_rows(examples: int, seed: int, rows: Sequence[tuple[str, str]] = ROWS) -> list[tuple[str, str, object]]:
    """``(template, model, TargetResult)`` per row, generated exactly as ``harness check`` does."""
    from harness.api import load_model, make_pair
    from harness.generate import generate
    from harness.runner import run_pair

    out = []
    for template, model in rows:
        pair = make_pair(load_model(model=model), f"llamafactory:{template}", DEPLOY)
        out.append((template, model, run_pair(pair, generate(examples, seed=seed, tools="any", reasoning=False))))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _cell(f"{fence}{pad}{text}{pad}{fence}")


def _verdict(c) -> str:
    if c.verdict in ("fail", "warn"):
        counts = f"{c.errors} errors" if c.errors else ""
        if c.warnings:
            counts += (", " if counts else "") + f"{c.warnings} warnings"
        return f"**{c.verdict}** ({counts} / {c.examples_run})" if c.verdict == "fail" else \
            f"warn ({counts} / {c.examples_run})"
    if c.verdict == "skipped":
        return f"skipped ({c.note})" if c.note else "skipped"
    return f"pass ({c.examples_run})"


def render(results: list[tuple[str, str, object]], examples: int, seed: int) -> str:
    from harness.renderers.llamafactory.upstream import import_llamafactory

    version = import_llamafactory().VERSION
    lines = [
        "# LLaMA-Factory templates vs the models' own chat templates",
        "",
        f"Generated by `harness lf-table --examples {examples} --seed {seed}` (LLaMA-Factory {version}). Each row "
        f"trains with `llamafactory:NAME` (LLaMA-Factory's real template code) and serves with `{DEPLOY}` (the zoo "
        "model's own chat template as vLLM applies it) over the same generated conversations (tools any, "
        "reasoning off). Counts are conversations; *fail* is an error on at least one, *warn* only "
        "data-dependent hazards (see the README, Severity). Re-run a row with the command beside it.",
        "",
    ]
    names = [c.name for c in next((r.checks for _, _, r in results if r.checks), ())]
    lines.append("| template | model | verdict | LF rejects | " + " | ".join(names) + " | reproduce |")
    lines.append("|" + "---|" * (len(names) + 5))
    for template, model, r in results:
        cells = [_verdict(c) for c in r.checks] if r.checks else [_cell(r.error)] * len(names)
        rejected = r.checks[0].rejected_train if r.checks else r.examples
        lines.append(f"| `{template}` | {model} | **{r.verdict}** | {rejected} | " + " | ".join(cells) +
                     f" | {_code(command(model, template, examples, seed))} |")
    lines += ["", "*LF rejects*: generated conversations LLaMA-Factory itself drops or cannot encode (not checked, not "
              "failed)" + "".join(f"; `{t}`: {_cell(why)}" for t, why in REJECTS.items()
                                  if any(t == row[0] for row in results)) + "."]
    lines += ["", "## Failing checks", "",
              "One row per failing check: the shrunk minimal counterexample, the first diverging token "
              "(training id != served id) and the cause, read off the real divergence.", "",
              "| template | check | errors | minimal counterexample | first divergence | cause |",
              "|---|---|---|---|---|---|"]
    any_fail = False
    for template, model, r in results:
        for c in r.checks:
            if c.verdict != "fail" or c.failure is None:
                continue
            any_fail = True
            f = c.failure
            head = f.diff.headline() if f.diff is not None and f.diff.index is not None else \
                f.explanation.split(":")[0]
            lines.append(f"| `{template}` | {c.name} | {c.errors}/{c.examples_run} | {_code(f.conversation.to_json())} "
                         f"| {_code(head)} | {_cell(diagnose(template, c.name, f))} |")
    if not any_fail:
        lines.append("| – | – | – | – | – | no failing checks |")
    lines += ["", "Warnings (data-dependent, listed in the table) are not broken down here; `harness check` on the "
              "row's command prints each with its counterexample.", ""]
    return "\n".join(lines)


def build(examples: int = 1000, seed: int = 0, rows: Sequence[tuple[str, str]] = ROWS) -> str:
    return render(run_rows(examples, seed, rows), examples, seed)


def main(examples: int = 1000, seed: int = 0, out: Path | str | None = DEFAULT_OUT,
         rows: Sequence[tuple[str, str]] = ROWS) -> int:
    """Write the document to ``out`` (stdout when ``out`` is ``-``). Exit 0."""
    text = build(examples, seed, rows)
    if out is None or str(out) == "-":
        print(text, end="")
        return 0
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def _argv(argv: Sequence[str] | None = None) -> argparse.Namespace:  # `python -m harness.lftable`
    parser = argparse.ArgumentParser(prog="harness lf-table", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    return parser.parse_args(argv)


if __name__ == "__main__":  # pragma: no cover
    ns = _argv()
    raise SystemExit(main(ns.examples, ns.seed, ns.out))
