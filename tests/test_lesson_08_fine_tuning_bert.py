"""Lesson 08 (fine-tuning BERT): dynamic padding on the lesson's own tokenizer and data, the
fine-tuning schedule it describes, the numbers in its quiz, and the dynamic_padding checker.

The lesson's model and tokenizer come from labkit.assets in stand-in mode, as in CI.
"""


import pytest
import torch
import yaml
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from conftest import ROOT, bank_question, cell_source
from notebook_runs import executed
from labkit.assets import load_text_model
from labkit.data import load_sentiment
from labkit.exercises.bert import check_dynamic_padding
from labkit.quiz import Quiz
from labkit.quiz.bank import load_bank
from labkit.text import DynamicPadding, SentenceEncoder, TextClassificationDataset, input_names
from labkit.transfer import replace_head
from labkit.vision import count_parameters

NOTEBOOK = ROOT / "notebooks" / "08_fine_tuning_bert.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "08_fine_tuning_bert.yaml"


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

def test_the_schedule_warms_up_linearly_then_decays_to_zero():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1e-4)
    total, warmup = 40, 4  # the quiz's example: 320 sentences, batches of 32, 4 epochs, 10%
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    rates = []
    for _ in range(total):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0 and rates[warmup] == pytest.approx(1e-4)
    assert all(a < b for a, b in zip(rates[:warmup], rates[1:warmup + 1]))
    assert all(a > b for a, b in zip(rates[warmup:], rates[warmup + 1:]))
    assert scheduler.get_last_lr()[0] == 0


def test_warmup_steps_in_the_quiz_follow_the_lessons_formula():
    steps_per_epoch = -(-len(load_sentiment("train")) // 32)
    total_steps = 4 * steps_per_epoch
    assert "warmup_steps = int(WARMUP_RATIO * total_steps)" in cell_source(NOTEBOOK, "approach-b")
    assert int(0.1 * total_steps) == bank_question(BANK, "warmup_steps")["answer"]


def test_approach_a_trains_only_the_head_the_quiz_counts(lesson_model):
    model, _ = lesson_model
    head = torch.nn.Linear(model.config.hidden_size, 2)
    assert count_parameters(head) == bank_question(BANK, "head_weights")["answer"] == 258
    assert count_parameters(model) == bank_question(BANK, "head_weights")["mistakes"][1]["answer"]


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
    assert bank.id == "08_fine_tuning_bert" and len(bank.questions) >= 6
    assert {"single", "multiple", "numeric", "text", "code"} <= {q.kind for q in bank.questions}
    raw = yaml.safe_load(BANK.read_text(encoding="utf-8"))
    assert all(q.get("explanation") for q in raw["questions"])
    assert bank.question("dynamic_padding").checker == "dynamic_padding"


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
    assert right.session.submit("dynamic_padding", DynamicPadding(0)).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    assert wrong.session.submit("dynamic_padding", fixed_length).status == "wrong"


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
