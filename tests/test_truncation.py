"""The ``truncation`` check and the truncation each side applies: LLaMA-Factory ``cutoff_len`` (its real code),
TRL ``max_length``, Ollama ``num_ctx`` (chatPrompt's drop-oldest), vLLM ``max_model_len``, LMDeploy ``session_len``."""

from __future__ import annotations

import pytest

from harness.api import make_pair
from harness.checks import CHECKS
from harness.conversation import Conversation
from harness.errors import InputError, RenderRejected
from harness.generate import generate
from harness.renderers.ollama.modelfile import parse_modelfile
from harness.renderers.ollama.renderer import OllamaRenderer
from harness.renderers.ollama.ctx import fit
from harness.runner import run_pair
from tests.conftest import fixture, needs_lf, result_of

MODELFILE = fixture("ollama/qwen2.5.Modelfile")
LMDEPLOY = fixture("lmdeploy/qwen2.5.chat_template.json")

pytestmark = pytest.mark.real_tokenizer


def long_conv(turns: int = 4) -> Conversation:
    """system + ``turns`` user/assistant turns; on Qwen2.5's template: 144 ids, answers at 31, 65, 99, 133."""
    msgs = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        msgs += [{"role": "user", "content": f"question number {i} " + "word " * 10},
                 {"role": "assistant", "content": f"answer {i} " + "ok " * 5}]
    return Conversation.from_openai(msgs)


def run(check: str, pair, conv):
    return CHECKS[check].run(pair.case(conv))


# ------------------------------------------------------------------ Ollama num_ctx: chatPrompt
class _WordTokenizer:
    """Ollama's test tokenizer (server/routes_generate_test.go ``mockRunner.Tokenize``): one id per field."""

    adds_bos = False
    bos_id = None

    def encode(self, text: str, **_: object) -> list[int]:
        return list(range(len(text.split())))


#: Ollama's own TestChatPrompt template (server/prompt_test.go), legacy .System/.Prompt/.Response path
LEGACY = 'FROM x\nTEMPLATE """{{- if .System }}{{ .System }} {{ end }}\n{{- if .Prompt }}{{ .Prompt }} {{ end }}\n' \
         '{{- if .Response }}{{ .Response }} {{ end }}"""\n'
SYS = {"role": "system", "content": "You are the Test Who Lived."}
HARRY = [{"role": "user", "content": "You're a test, Harry!"}, {"role": "assistant", "content": "I-I'm a what?"},
         {"role": "user", "content": "A test. And a thumping good one at that, I'd wager."}]


@pytest.mark.parametrize("name, limit, messages, prompt", [
    # the text-only cases of Ollama's TestChatPrompt, with their expected prompts
    ("messages", 64, HARRY, "You're a test, Harry! I-I'm a what? A test. And a thumping good one at that, I'd wager. "),
    ("truncate messages", 1, HARRY, "A test. And a thumping good one at that, I'd wager. "),
    ("message with system prompt", 2048, [SYS, *HARRY],
     "You are the Test Who Lived. You're a test, Harry! I-I'm a what? A test. And a thumping good one at that, I'd wager. "),
    # ("out of order system" is left out: a harness conversation has its system message first)
    # beyond Ollama's cases (the rule read from chatPrompt): a dropped system message comes back in front
    ("system kept, history dropped", 17, [SYS, *HARRY], "You are the Test Who Lived. A test. And a thumping good one at that, I'd wager. "),
])
def test_ollama_fit_agrees_with_ollamas_own_chat_prompt_cases(name, limit, messages, prompt):
    renderer = OllamaRenderer("ollama:legacy", _WordTokenizer(), parse_modelfile(LEGACY), add_bos=False, num_ctx=limit)
    assert fit(renderer, Conversation.from_openai(messages)).text == prompt, name


@pytest.mark.parametrize("limit, sent", [(24, (0, 1, 2, 3)), (23, (0, 2, 3)), (20, (0, 2, 3)), (19, (0, 3)),
                                         (1, (0, 3))])
def test_ollama_fit_drops_from_the_front_one_message_at_a_time(limit, sent):
    # words: system 6, user 4, assistant 3, last user 11
    renderer = OllamaRenderer("ollama:legacy", _WordTokenizer(), parse_modelfile(LEGACY), add_bos=False, num_ctx=limit)
    assert fit(renderer, Conversation.from_openai([SYS, *HARRY])).sent == sent


def test_ollama_drops_oldest_keeping_system_and_last(qwen):
    conv = long_conv()
    deploy = make_pair(qwen, "jinja:.", f"ollama:{MODELFILE},num_ctx=60").deploy
    plain = make_pair(qwen, "jinja:.", f"ollama:{MODELFILE}").deploy
    got = deploy.render(conv.prefix(4))
    assert got.extra["sent_messages"] == (0, 2, 3)
    kept = Conversation(tuple(conv.messages[i] for i in (0, 2, 3)), conv.tools)
    assert got.ids == plain.render(kept).ids and len(got.ids) <= 60
    assert len(plain.render(conv.prefix(4)).ids) > 60  # dropping message 1 was needed
    assert "sent_messages" not in plain.render(conv.prefix(4)).extra
    tiny = make_pair(qwen, "jinja:.", f"ollama:{MODELFILE},num_ctx=5").deploy.render(conv.prefix(8))
    assert tiny.extra["sent_messages"] == (0, 7) and tiny.extra["overflow"]  # system + last, still too long


def test_ollama_reads_parameter_num_ctx(qwen, tmp_path):
    source = open(MODELFILE).read()
    path = tmp_path / "Modelfile"
    path.write_text(source + "\nPARAMETER num_ctx 60\n")
    assert make_pair(qwen, "jinja:.", f"ollama:{path}").deploy.num_ctx == 60
    path.write_text(source + "\nPARAMETER num_ctx lots\n")
    with pytest.raises(InputError, match="num_ctx='lots'.*PARAMETER num_ctx 4096"):
        make_pair(qwen, "jinja:.", f"ollama:{path}")


# ------------------------------------------------------------------ training side
@needs_lf
def test_llamafactory_cutoff_len_is_its_real_code(qwen):
    conv = long_conv()
    train = make_pair(qwen, "llamafactory:qwen,cutoff_len=75", "hf:.").train
    enc = train.render(conv)
    ids, _ = train.encode_lf(conv)  # LLaMA-Factory's supervised processor, unchanged
    assert enc.ids == tuple(ids) and len(ids) == 75
    assert enc.extra["kept_messages"] == (0, 1, 2, 3, 4) and enc.extra["cut_answers"] == ()
    assert [a.message for a in enc.answers] == [2, 4]
    text = qwen.hf.decode(list(ids))
    assert "question number 1" in text and "question number 2" not in text  # messages 5.. are gone
    cut = make_pair(qwen, "llamafactory:qwen,cutoff_len=60", "hf:.").train.render(conv)
    assert cut.extra["cut_answers"] == (4,)  # answer 4 keeps part of its ids
    masked = make_pair(qwen, "llamafactory:qwen,cutoff_len=75,mask_history=true", "hf:.").train.render(conv)
    assert masked.extra["kept_messages"] == (3, 4, 5, 6, 7, 8)  # mask_history keeps the last turns first
    assert "kept_messages" not in make_pair(qwen, "llamafactory:qwen", "hf:.").train.render(conv).extra


def test_trl_max_length_keep_start_and_keep_end(qwen):
    conv = long_conv()
    whole = make_pair(qwen, "jinja:.", "hf:.").train.render(conv)
    start = make_pair(qwen, "jinja:.,max_length=75", "hf:.").train.render(conv)
    # trl/trainer/sft_trainer.py: input_ids[:max_length], labels[:max_length]
    assert start.ids == whole.ids[:75] and start.labels == whole.labels[:75]
    assert [a.message for a in start.answers] == [2, 4] and start.extra["cut_answers"] == (4,)
    assert start.extra["kept_messages"] == (0, 1, 2, 3, 4)
    end = make_pair(qwen, "jinja:.,max_length=75,truncation_mode=keep_end", "hf:.").train.render(conv)
    assert end.ids == whole.ids[-75:] and end.labels == whole.labels[-75:]
    assert end.extra["kept_messages"] == (4, 5, 6, 7, 8) and [a.message for a in end.answers] == [4, 6, 8]
    with pytest.raises(RenderRejected, match="TRL drops"):  # only the prompt left: no trained id
        make_pair(qwen, "jinja:.,max_length=20", "hf:.").train.render(conv)
    assert "kept_messages" not in make_pair(qwen, "jinja:.,max_length=1024", "hf:.").train.render(conv).extra


# ------------------------------------------------------------------ rejecting engines
@pytest.mark.parametrize("deploy, limit", [("hf:.,max_model_len={}", "max_model_len"),
                                           (f"lmdeploy:{LMDEPLOY},session_len={{}}", "session_len")])
def test_engine_rejects_prompt_at_its_limit(qwen, deploy, limit):
    conv = long_conv()
    n = len(make_pair(qwen, "jinja:.", "hf:.").deploy.render(conv.prefix(4)).ids)  # 65
    at = make_pair(qwen, "jinja:.", deploy.format(n))
    assert f"{limit}={n}" in at.deploy.render(conv.prefix(4)).extra["rejected"]  # needs room for one output id
    assert "rejected" not in make_pair(qwen, "jinja:.", deploy.format(n + 1)).deploy.render(conv.prefix(4)).extra
    failure = run("truncation", at, conv)
    assert failure.severity == "warning" and failure.cause == "context-rejected" and failure.message == 4


# ------------------------------------------------------------------ the check
def test_check_holds_when_training_cut_matches_full_serving(qwen):
    # training keeps 0..4 (cut at 75); serving sends the whole history of answers 2 and 4: same histories
    assert run("truncation", make_pair(qwen, "jinja:.,max_length=75", "hf:."), long_conv()) is None


def test_check_flags_ollama_dropping_history_training_kept(qwen):
    failure = run("truncation", make_pair(qwen, "jinja:.", f"ollama:{MODELFILE},num_ctx=60"), long_conv())
    assert failure.severity == "error" and failure.cause == "history-truncated" and failure.message == 4
    assert "trained with history 0..3 but Ollama (num_ctx=60) sends 0,2..3" in failure.explanation
    # prompt-prefix leaves the dropped history to this check instead of reporting a template divergence
    assert run("prompt-prefix", make_pair(qwen, "jinja:.", f"ollama:{MODELFILE},num_ctx=60"), long_conv()) is None


def test_check_flags_keep_end_history_serving_does_not_cut(qwen):
    failure = run("truncation", make_pair(qwen, "jinja:.,max_length=75,truncation_mode=keep_end", "hf:."), long_conv())
    assert failure.cause == "history-truncated" and "history none but" in failure.explanation


@needs_lf
def test_sweep_finds_cutoff_1024_vs_num_ctx_256_with_a_minimal_counterexample(qwen):
    pair = make_pair(qwen, "llamafactory:qwen,cutoff_len=1024", f"ollama:{MODELFILE},num_ctx=256")
    convs = list(generate(8, seed=3, min_turns=5, max_turns=6, tools=False, reasoning=False, hostile=False))
    result = result_of(run_pair(pair, convs, checks=["truncation"]), "truncation")
    assert result.errors > 0
    failure = result.failure
    assert failure.cause == "history-truncated"
    assert len(failure.conversation.messages) < max(len(c.messages) for c in convs)  # shrunk


def test_quiet_on_default_stacks(qwen):
    convs = list(generate(15, seed=0, tools="any", reasoning=False))
    for deploy in ("hf:.", f"ollama:{MODELFILE}"):
        result = result_of(run_pair(make_pair(qwen, "jinja:.", deploy), convs, checks=["truncation"]), "truncation")
        assert result.verdict == "skipped" and "neither side truncates" in result.note


@pytest.mark.parametrize("train, deploy, message", [
    ("jinja:.,max_length=0", "hf:.", "max_length=0 is not accepted"),
    ("jinja:.,truncation_mode=middle", "hf:.", "truncation_mode='middle' is not accepted; truncation_mode takes keep_start|keep_end"),
    ("jinja:.", "hf:.,max_model_len=1.5", "max_model_len=1.5 is not accepted"),
    ("jinja:.", f"ollama:{MODELFILE},num_ctx=-1", "num_ctx=-1 is not accepted"),
    ("jinja:.", f"lmdeploy:{LMDEPLOY},session_len=true", "session_len=true is not accepted"),
])
def test_bad_limits_are_refused_naming_the_option(qwen, train, deploy, message):
    from harness.errors import SpecError

    with pytest.raises(SpecError, match=message.replace("|", r"\|").replace(".", r"\.")):
        make_pair(qwen, train, deploy)
