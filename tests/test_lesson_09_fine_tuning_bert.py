"""Lesson 09 (fine-tuning BERT): dynamic padding on the lesson's own tokenizer and data, the
fine-tuning schedule it describes, the numbers in its quiz, and the dynamic_padding checker.

The lesson's model and tokenizer come from labkit.assets in stand-in mode, as in CI.
"""


import copy

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from conftest import ROOT, bank_question, cell_source
from notebook_runs import executed
from labkit.assets import load_text_model
from labkit.data import load_sentiment
from labkit.exercises.bert import check_dynamic_padding
from labkit.quiz import Quiz
from labkit.quiz.bank import load_bank
from labkit.text import (DynamicPadding, SentenceEncoder, TextClassificationDataset,
                         fine_tuning_optimizer, input_names)
from labkit.transfer import replace_head
from labkit.vision import count_parameters

NOTEBOOK = ROOT / "notebooks" / "09_fine_tuning_bert.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "09_fine_tuning_bert.yaml"


@pytest.fixture(scope="module")
def lesson_model():
    model, tokenizer = load_text_model("bert-tiny", task="sequence-classification",
                                       num_labels=2, standin=True)
    return model, tokenizer


@pytest.fixture(scope="module")
def train_set(lesson_model):
    model, tokenizer = lesson_model
    train = load_sentiment("train")
    return TextClassificationDataset(train.texts, train.labels, tokenizer,
                                     names=input_names(model))


# --- dynamic padding, as the lesson builds its loaders ----------------------------------------

def test_every_batch_is_exactly_as_long_as_its_longest_sentence(lesson_model, train_set):
    _, tokenizer = lesson_model
    loader = DataLoader(train_set, batch_size=32, shuffle=True,
                        collate_fn=DynamicPadding(tokenizer.pad_token_id),
                        generator=torch.Generator().manual_seed(0))
    longest_overall = max(len(item["input_ids"]) for item in train_set)
    seen = 0
    for batch in loader:
        lengths = batch["attention_mask"].sum(dim=1)
        assert batch["input_ids"].shape[1] == int(lengths.max()) <= longest_overall
        assert batch["input_ids"].shape == batch["attention_mask"].shape \
            == batch["token_type_ids"].shape
        assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()
        assert batch["labels"].dtype == torch.long
        seen += len(batch["labels"])
    assert seen == len(train_set) == 320


def test_dynamic_padding_computes_fewer_positions_than_fixed_padding(lesson_model, train_set):
    _, tokenizer = lesson_model
    loader = DataLoader(train_set, batch_size=32, collate_fn=DynamicPadding(tokenizer.pad_token_id))
    dynamic = sum(batch["input_ids"].numel() for batch in loader)
    longest = max(len(item["input_ids"]) for item in train_set)
    assert dynamic <= len(train_set) * longest < len(train_set) * 128


def test_dynamic_padding_gives_the_model_what_padding_everything_gives(lesson_model, train_set):
    """Padding is invisible to the model: the same logits either way (eval mode)."""
    model, tokenizer = lesson_model
    model.eval()
    items = [train_set[i] for i in range(4)]
    dynamic = DynamicPadding(tokenizer.pad_token_id)(items)
    fixed = tokenizer([train_set.texts[i] for i in range(4)], padding="max_length",
                      max_length=64, return_tensors="pt")
    with torch.no_grad():
        a = model(**{k: v for k, v in dynamic.items() if k != "labels"}).logits
        b = model(**fixed).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# --- the training recipe ------------------------------------------------------------------------

# What google-research/bert's optimization.py leaves out of weight decay, by name.
BERT_NO_DECAY = ("LayerNorm", "layer_norm", "bias")


@pytest.fixture(scope="module")
def minilm():
    """The lesson's default model, MiniLM with a classification head: real weights, installed."""
    model, _ = load_text_model("all-minilm-l6-v2", task="sequence-classification", num_labels=2,
                               offline=True)
    return model


def decay_by_name(model, optimizer):
    """Parameter name -> the weight decay its optimizer group applies."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: group["weight_decay"] for group in optimizer.param_groups
            for p in group["params"]}


@pytest.mark.parametrize("name", ["all-minilm-l6-v2", "distilbert-base-uncased"])
def test_weight_decay_skips_biases_and_layernorm_as_berts_code_does(name, minilm):
    model = minilm if name == "all-minilm-l6-v2" else load_text_model(
        name, task="sequence-classification", num_labels=2, standin=True)[0]
    optimizer, _, _ = fine_tuning_optimizer(model, lr=1e-4, total_steps=40, weight_decay=0.01)
    decay = decay_by_name(model, optimizer)
    assert sorted(decay) == sorted(n for n, _ in model.named_parameters())  # each one, once
    skipped = {n for n, rate in decay.items() if rate == 0}
    assert skipped == {n for n in decay if any(word in n for word in BERT_NO_DECAY)}
    assert {rate for n, rate in decay.items() if n not in skipped} == {0.01}
    assert "classifier.weight" not in skipped and "classifier.bias" in skipped
    assert any("layer_norm" in n or "LayerNorm" in n for n in skipped)
    assert any("embeddings.word_embeddings.weight" in n for n in decay if n not in skipped)


def test_only_the_decayed_weights_shrink_when_the_gradient_is_zero(minilm):
    """With zero gradients Adam's step is 0, so what changes is weight decay alone."""
    model = copy.deepcopy(minilm)
    optimizer, scheduler, _ = fine_tuning_optimizer(model, lr=1e-2, total_steps=10,
                                                    warmup_ratio=0.0, weight_decay=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    for name, parameter in model.named_parameters():
        if any(word in name for word in BERT_NO_DECAY):
            torch.testing.assert_close(parameter.detach(), before[name], rtol=0, atol=0)
        else:
            torch.testing.assert_close(parameter.detach(), before[name] * (1 - 1e-2 * 0.1))


def learning_rates(optimizer, scheduler, steps):
    """The learning rate each optimizer step uses, stepping as fit does (once per batch)."""
    rates = []
    for _ in range(steps):
        assert len({group["lr"] for group in optimizer.param_groups}) == 1  # one rate for all
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_warm_up_is_a_tenth_of_a_known_number_of_steps_from_zero_to_the_peak():
    """40 steps (the quiz's example) with a ratio of 0.1: 4 steps of warm-up. Passing the ratio
    itself to the scheduler as a number of steps (0.1) would put the peak at step 1."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    optimizer, scheduler, warmup = fine_tuning_optimizer(model, lr=1e-4, total_steps=40,
                                                         warmup_ratio=0.1)
    rates = learning_rates(optimizer, scheduler, 40)
    assert warmup == 4
    assert rates[0] == 0 and rates[1] == pytest.approx(0.25e-4) and rates[4] == pytest.approx(1e-4)
    assert all(a < b for a, b in zip(rates[:4], rates[1:5]))     # rising over the warm-up
    assert all(a > b for a, b in zip(rates[4:], rates[5:]))      # then falling every step
    assert rates[-1] == pytest.approx(1e-4 / 36) and scheduler.get_last_lr()[0] == 0


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 4])
def test_a_warmup_ratio_outside_zero_to_one_is_refused_with_the_fix(ratio):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="share of the steps") as error:
        fine_tuning_optimizer(model, lr=1e-4, total_steps=40, warmup_ratio=ratio)
    assert "Fix:" in str(error.value)


def test_the_lesson_builds_its_optimizer_with_the_recipe_and_uses_its_schedule():
    source = " ".join(cell_source(NOTEBOOK, "approach-b").split())
    assert ("fine_tuning_optimizer( model, lr=lr, total_steps=total_steps, "
            "warmup_ratio=WARMUP_RATIO, weight_decay=WEIGHT_DECAY)") in source
    assert "torch.optim.AdamW(model.parameters()" not in source
    state = executed(NOTEBOOK).ok().state
    total, warmup, rates = state["total_steps"], state["warmup_steps"], state["learning_rates"]
    assert warmup == int(state["WARMUP_RATIO"] * total)
    assert len(rates) == total  # the rate of every optimizer step of the last seed
    assert rates[warmup] == pytest.approx(state["lr"])
    assert rates[0] == (0 if warmup else pytest.approx(state["lr"]))
    assert all(a > b for a, b in zip(rates[warmup:], rates[warmup + 1:]))


def test_the_trainer_example_passes_a_number_of_steps_not_the_ratio():
    """transformers 4 reads warmup_steps as a count (0.1: no warm-up), transformers 5 reads a
    value below 1 as a share; a count of steps means the same to both."""
    source = cell_source(NOTEBOOK, "trainer-note")
    assert "warmup_steps=WARMUP_RATIO" not in source
    assert "warmup_steps=warmup_steps" in source


def test_approach_a_trains_only_the_head_the_quiz_counts(minilm):
    head = torch.nn.Linear(minilm.config.hidden_size, 2)
    question = bank_question(BANK, "head_weights")
    assert count_parameters(head) == question["answer"] == 770
    assert count_parameters(minilm) == question["mistakes"][1]["answer"]


def test_sentence_encoder_features_and_a_fresh_head_per_seed(lesson_model, train_set):
    model, tokenizer = lesson_model
    batch = DynamicPadding(tokenizer.pad_token_id)([train_set[i] for i in range(3)])
    with torch.no_grad():
        features = SentenceEncoder(model.base_model).eval()(
            **{k: v for k, v in batch.items() if k != "labels"})
    assert features.shape == (3, model.config.hidden_size)
    torch.manual_seed(0)
    first = replace_head(model, num_classes=2).classifier.weight.clone()
    torch.manual_seed(1)
    assert not torch.equal(first, replace_head(model, num_classes=2).classifier.weight)


def test_published_figures_name_their_source():
    source = cell_source(NOTEBOOK, "results")
    assert '"bert-tiny": (83.2, "GLUE test set, google-research/bert README (Turc et al. 2019)")' in source
    assert "Devlin et al. 2019" in source and "Sanh et al. 2019" in source
    assert 'data_name.startswith("SST-2") and not STANDIN' in source


# --- quiz and checker -----------------------------------------------------------------------------

def test_quiz_bank_is_valid_and_names_the_checker():
    bank = load_bank(BANK)
    assert bank.id == "09_fine_tuning_bert" and len(bank.questions) >= 6
    assert {"single", "multiple", "numeric", "text", "code"} <= {q.kind for q in bank.questions}
    raw = yaml.safe_load(BANK.read_text(encoding="utf-8"))
    assert all(q.get("explanation") for q in raw["questions"])
    assert bank.question("collate_batch").checker == "dynamic_padding"


def fixed_length(features):
    batch = {}
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        batch[name] = torch.tensor([f[name] + [0] * (128 - len(f[name])) for f in features])
    batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def left_padded(features):
    longest = max(len(f["input_ids"]) for f in features)
    batch = {n: torch.tensor([[0] * (longest - len(f[n])) + f[n] for f in features])
             for n in ("input_ids", "attention_mask", "token_type_ids")}
    batch["labels"] = torch.tensor([f["labels"] for f in features])
    return batch


def mask_padded_with_ones(features):
    batch = DynamicPadding()(features)
    batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
    return batch


def pads_with_unk(features):
    return DynamicPadding(pad_token_id=1)(features)


def no_labels(features):
    batch = DynamicPadding()(features)
    del batch["labels"]
    return batch


def lists_not_tensors(features):
    return {k: v.tolist() for k, v in DynamicPadding()(features).items()}


def test_checker_accepts_labkits_dynamic_padding():
    result = check_dynamic_padding(DynamicPadding(0), pad_token_id=0)
    assert result.correct, result.message


@pytest.mark.parametrize("wrong, words", [
    (fixed_length, ["fixed length", "longest in this batch"]),
    (left_padded, ["pads on the right"]),
    (mask_padded_with_ones, ["attention mask", "0 on padding"]),
    (pads_with_unk, ["[PAD] id, 0"]),
    (no_labels, ["'labels'"]),
    (lists_not_tensors, ["tensors"]),
    ("collate", ["Expected a function"]),
])
def test_checker_names_the_mistake_and_the_fix(wrong, words):
    result = check_dynamic_padding(wrong, pad_token_id=0)
    assert not result.correct
    for word in words:
        assert word in result.message, result.message
    assert "Fix:" in result.message


def test_the_quiz_grades_the_exercise_through_the_checker(tmp_path):
    right = Quiz.from_file(BANK, results_path=tmp_path / "right.json")
    assert right.session.submit("collate_batch", DynamicPadding(0)).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    assert wrong.session.submit("collate_batch", fixed_length).status == "wrong"


# --- the lesson's run on MiniLM's real weights (read from its one execution in this test run) --


def test_a_head_on_frozen_minilm_features_beats_chance_and_fine_tuning_is_reported():
    run = executed(NOTEBOOK).ok()
    state = run.state
    assert state["MODEL_NAME"] == "all-minilm-l6-v2" and len(state["seeds"]) >= 3
    frozen = [r["accuracy"] for r in state["results"]["A: feature extraction"]]
    tuned = [r["accuracy"] for r in state["results"]["B: fine-tuning"]]
    assert len(frozen) == len(tuned) == len(state["seeds"])
    assert min(frozen) >= 0.6, frozen  # chance is 0.5 on the balanced test sentences
    assert all(0.0 <= a <= 1.0 for a in tuned)
    shown = "".join(o.get("text", "") for c in run.cells() for o in c.outputs)
    assert "B: fine-tuning" in shown and "A: feature extraction" in shown
    assert "STAND-IN" not in shown  # real weights, whatever the stand-in switch says
    banners = [o for c in run.cells() for o in c.outputs
               if "STAND-IN" in str(o.get("data", {}).get("text/plain", ""))]
    assert not banners


# --- the exercise comes before labkit's version of it; the quiz's readings of the run ---------


def test_the_learner_writes_collate_batch_before_the_lesson_shows_dynamic_padding():
    from conftest import exercise_and_helper

    cells, exercise, helper = exercise_and_helper(NOTEBOOK, "def collate_batch(", "DynamicPadding")
    assert "### BEGIN SOLUTION" in cells[exercise].source
    assert helper and min(helper) > exercise, (exercise, helper)
    padding = next(i for i, c in enumerate(cells) if c.get("id") == "padding")
    assert exercise < padding and "collate_fn=collate_batch" in cells[padding].source


def test_the_padding_factor_the_quiz_interprets_is_what_the_run_counted():
    state = executed(NOTEBOOK).ok().state
    assert state["fixed_max"] / state["dynamic"] > 3          # "more than three times as many"
    assert max(state["lengths"]) < state["MAX_LENGTH"] / 3    # far shorter than 128
    assert "more than three times" in bank_question(BANK, "read_padding_factor")["prompt"]


def test_the_open_questions_model_answer_states_what_the_smoke_run_measured():
    """It says that with 4 steps (smoke size) B fell below A, as the results section does."""
    question = load_bank(BANK).question("open_choose_approach")
    assert question.points == 0 and all(c.correct for c in question.choices)
    assert "with only 4 steps (smoke size) B fell below A" in question.explanation
    state = executed(NOTEBOOK).ok().state
    assert state["total_steps"] == 4
    mean = {name: sum(r["accuracy"] for r in runs) / len(runs)
            for name, runs in state["results"].items()}
    assert mean["B: fine-tuning"] < mean["A: feature extraction"]
