"""Lesson 06 (fine-tuning): the numbers its prose and quiz state, the notebook's own helpers
(the warm-up schedule, the random flips, the four starting points), the LR finder's
keep_ratios, and the fine_tuning_setup checker. The comparison over seeds, the diagnosis,
saving and Inception v3 are lesson 07's (tests/test_lesson_07_fine_tuning_strategies.py).

CPU only, nothing downloaded: models are built with weights=None. The helpers are the
notebook's own code: cells are read from notebooks/06_fine_tuning.ipynb by id and executed
here, so a change there is tested here.
"""

import math
from pathlib import Path

import nbformat
import pytest
import torch
import torchvision
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import ResNet18_Weights

from labkit.device import seed_everything
from labkit.exercises.transfer_learning import check_fine_tuning_setup, expected_rates
from labkit.lr_finder import find_lr
from labkit.quiz import Quiz, load_bank
from labkit.transfer import freeze_backbone, param_groups, train_mode, unfreeze

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_fine_tuning.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "06_fine_tuning.yaml"
OPTIONS = {"stages": ["layer3", "layer4"], "decay": 0.3, "num_classes": 2}


def questions():
    return {q["id"]: q for q in yaml.safe_load(BANK.read_text(encoding="utf-8"))["questions"]}


def cells():
    return {cell.get("id"): cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells}


def run_cells(*cell_ids, **namespace):
    """Execute the notebook's cells in a fresh namespace (plus the given names) and return it."""
    source = cells()
    namespace = {"torch": torch, "torchvision": torchvision, "nn": nn, "math": math,
                 "seed_everything": seed_everything, **namespace}
    for cell_id in cell_ids:
        exec(source[cell_id], namespace)  # noqa: S102  (the course's own notebook)
    return namespace


def parameters():
    return run_cells("parameters")


def count(params):
    return sum(p.numel() for p in params)


def resnet18(num_classes=2, seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


# --- the numbers the lesson states -----------------------------------------------------------


def test_last_stage_trains_three_quarters_of_resnet18_as_the_quiz_says():
    model = resnet18()
    freeze_backbone(model)
    unfreeze(model, "layer4")
    trainable = count(p for p in model.parameters() if p.requires_grad)
    layer4, head, total = count(model.layer4.parameters()), count(model.fc.parameters()), \
        count(model.parameters())
    assert (layer4, head, trainable, total) == (8_393_728, 1_026, 8_394_754, 11_177_538)
    assert trainable / total > 0.74  # the prose: layer4 holds most of the weights
    bank = questions()["last_stage_params"]
    assert bank["answer"] == trainable
    assert {m["answer"] for m in bank["mistakes"]} == {layer4, head, total}


def test_the_layer3_rate_of_the_quiz_is_what_param_groups_gives():
    model = resnet18()
    freeze_backbone(model)
    unfreeze(model, "layer3", "layer4")
    rates = {g["name"]: g["lr"] for g in param_groups(model, lr=1e-3, decay=0.3)}
    assert rates == pytest.approx({"layer3": 9e-5, "layer4": 3e-4, "fc": 1e-3})
    question = questions()["layer3_rate"]
    assert question["answer"] == pytest.approx(rates["layer3"])
    assert expected_rates(1e-3, ["layer3", "layer4"], 0.3) == pytest.approx(rates)


def test_the_exercise_uses_the_lessons_decay():
    assert parameters()["DECAY"] == OPTIONS["decay"] == questions()["fine_tuning_setup"][
        "options"]["decay"]
    assert "param_groups(model, lr=lr, decay=0.3)" in cells()["exercise"]


# --- the notebook's helpers --------------------------------------------------------------------


def test_warmup_rises_to_the_peak_then_the_cosine_falls_to_zero():
    factor = run_cells("warmup-cosine")["warmup_cosine"](50, 10)
    values = [factor(step) for step in range(51)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:10], values[1:10]))    # warm-up: rising
    assert all(a >= b for a, b in zip(values[9:], values[10:]))      # then never rising
    assert values[49] < 0.01 and values[50] == pytest.approx(0.0, abs=1e-12)
    assert values[30] == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 40)))


def test_lambdalr_keeps_the_ratio_between_stages_at_every_step():
    warmup_cosine = run_cells("warmup-cosine")["warmup_cosine"]
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    optimizer = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 3e-4},
                                   {"params": model[1].parameters(), "lr": 1e-3}])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(20, 5))
    for _ in range(19):
        backbone, head = (g["lr"] for g in optimizer.param_groups)
        assert backbone / head == pytest.approx(0.3)
        optimizer.step()
        scheduler.step()


@pytest.fixture(scope="module")
def data_namespace():
    """The notebook's loader cell on 40 small random 'images' of two classes."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 16, 16, generator=generator)
    labels = torch.arange(40) % 2
    return run_cells("loaders", train_images=images, train_labels=labels, val_images=images[:10],
                     val_labels=labels[:10], BATCH_SIZE=8,
                     preset=ResNet18_Weights.IMAGENET1K_V1.transforms())


def test_random_flip_mirrors_about_half_the_draws_and_keeps_labels(data_namespace):
    dataset = data_namespace["RandomFlip"](data_namespace["train_images"],
                                           data_namespace["train_labels"])
    seed_everything(0)
    original = dataset.images[3]
    flips = 0
    for _ in range(400):
        image, label = dataset[3]
        assert label == dataset.labels[3]
        assert torch.equal(image, original) or torch.equal(image, original.flip(-1))
        flips += torch.equal(image, original.flip(-1))
    assert 150 < flips < 250
    assert torch.equal(dataset.images[3], original)  # the stored tensor is never changed


def test_loaders_repeat_with_the_seed(data_namespace):
    make_loaders = data_namespace["make_loaders"]

    def first_batch(seed):
        seed_everything(seed)  # the flips draw from torch's stream, as in the notebook
        return next(iter(make_loaders(seed)[0]))

    same = [first_batch(1) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*same))
    assert not torch.equal(first_batch(2)[0], same[0][0])
    assert len(make_loaders(0)[1].dataset) == 10


def test_to_picture_undoes_the_normalisation(data_namespace):
    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()
    picture = torch.rand(3, 8, 8)
    normalised = (picture - torch.tensor(preset.mean)[:, None, None]) / \
        torch.tensor(preset.std)[:, None, None]
    assert torch.allclose(data_namespace["to_picture"](normalised), picture, atol=1e-6)


@pytest.fixture(scope="module")
def strategies():
    pretrained = resnet18(num_classes=1000, seed=123)  # plays the pre-trained model
    return run_cells("build-model", MODEL_NAME="resnet18", pretrained=pretrained,
                     classes=["ants", "bees"], SEED=0)


@pytest.mark.parametrize("strategy, trains", [
    ("scratch", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}),
    ("feature extraction", {"fc"}),
    ("last stage", {"layer4", "fc"}),
    ("full", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}),
])
def test_each_strategy_trains_what_the_table_says(strategies, strategy, trains):
    model = strategies["build_model"](strategy, 0)
    assert model.fc.out_features == 2
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == trains
    frozen = {name.split(".")[0] for name, p in model.named_parameters() if not p.requires_grad}
    assert not frozen & trainable  # whole stages, never half of one
    train_mode(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.training == (name.split(".")[0] in trains), name


def test_pretrained_strategies_start_from_the_pretrained_weights(strategies):
    reference = strategies["pretrained_state"]
    for strategy in ("feature extraction", "last stage", "full"):
        model = strategies["build_model"](strategy, 0)
        assert torch.equal(model.conv1.weight, reference["conv1.weight"])
        assert torch.equal(model.layer4[1].bn2.running_var, reference["layer4.1.bn2.running_var"])
    scratch = strategies["build_model"]("scratch", 0)
    assert not torch.equal(scratch.conv1.weight, reference["conv1.weight"])


def test_the_seed_fixes_the_new_head_and_changes_it(strategies):
    build = strategies["build_model"]
    assert torch.equal(build("last stage", 4).fc.weight, build("last stage", 4).fc.weight)
    assert not torch.equal(build("last stage", 4).fc.weight, build("last stage", 5).fc.weight)
    with pytest.raises(ValueError, match="choose one of"):
        build("half", 0)


def test_the_notebook_follows_the_course_conventions():
    source = cells()
    code = "\n".join(source.values())
    assert "standin=STANDIN, offline=OFFLINE" in source["data-load"]
    assert code.count("hymenoptera_folders(standin=STANDIN, offline=OFFLINE)") == 1
    assert "register_backward_hook" not in code
    assert "keep_ratios=True" in source["finder"]
    assert "patience=PATIENCE" in source["step-2-train"]
    assert 'scheduler_step="batch"' in source["step-2-train"]
    params = parameters()
    assert params["IMAGE_SIZE"] is None
    # The comparison over seeds, the diagnosis and saving are lesson 07's.
    assert not {"SEEDS", "COMPARE_EPOCHS", "SAVE_DIR"} & set(params)


def test_the_finder_reading_question_prints_what_the_finder_cell_prints():
    # The cell keeps the suggestion within HEAD_LR / 10 .. HEAD_LR * 3 and prints the bounds
    # and the peak rate in these formats; the read_finder question quotes such a line.
    source = cells()["finder"]
    assert "low, high = HEAD_LR / 10, HEAD_LR * 3" in source
    assert 'f", limited to {low:.0e}..{high:.0e}"' in source
    assert "peak rate for the head: {peak_lr:.1e}" in source
    head_lr = parameters()["HEAD_LR"]
    low, high = head_lr / 10, head_lr * 3
    suggestion = 2.1e-2
    peak = min(max(suggestion, low), high)
    line = (f"suggestion {suggestion:.1e}, limited to {low:.0e}..{high:.0e}; "
            f"peak rate for the head: {peak:.1e}")
    prompt = " ".join(questions()["read_finder"]["prompt"].split())
    assert head_lr == 1e-3 and line in prompt and "HEAD_LR = 1e-3" in prompt, (line, prompt)
    assert peak == pytest.approx(3 * head_lr)  # the correct choice: "three times HEAD_LR"


# --- the LR finder with discriminative rates ------------------------------------------------


class RecordingAdamW(torch.optim.AdamW):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def step(self, closure=None):
        self.seen.append([group["lr"] for group in self.param_groups])
        return super().step(closure)


def two_stage_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def toy_loader():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)


def groups(model):
    return [{"params": model[0].parameters(), "lr": 1e-4},
            {"params": model[2].parameters(), "lr": 1e-3}]


def test_keep_ratios_sweeps_the_head_and_keeps_earlier_stages_in_proportion():
    model = two_stage_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = RecordingAdamW(groups(model))
    result = find_lr(model, toy_loader(), "cpu", optimizer=optimizer, start_lr=1e-5, end_lr=1.0,
                     num_steps=12, keep_ratios=True)
    assert len(optimizer.seen) >= 3
    for (backbone, head), recorded in zip(optimizer.seen, result.lrs):
        assert backbone / head == pytest.approx(0.1)
        assert head == pytest.approx(recorded)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-3]  # put back
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_without_keep_ratios_every_group_gets_the_swept_rate_as_before():
    model = two_stage_model()
    optimizer = RecordingAdamW(groups(model))
    find_lr(model, toy_loader(), "cpu", optimizer=optimizer, start_lr=1e-5, end_lr=1.0,
            num_steps=6)
    assert all(backbone == head for backbone, head in optimizer.seen)


def test_keep_ratios_needs_positive_rates():
    model = two_stage_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="positive"):
        find_lr(model, toy_loader(), "cpu", optimizer=optimizer, num_steps=3, keep_ratios=True)


# --- the quiz bank and the exercise's checker ------------------------------------------------


def test_bank_validates_and_names_the_checker():
    bank = load_bank(BANK)
    assert bank.id == "06_fine_tuning" and len(bank.questions) >= 6
    assert all(q.explanation for q in bank.questions)
    assert {"single", "multiple", "numeric", "code"} <= {q.kind for q in bank.questions}
    question = bank.question("fine_tuning_setup")
    assert question.checker == "fine_tuning_setup" and dict(question.options) == OPTIONS


def reference_solution(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer3", "layer4")
    return torch.optim.AdamW(param_groups(model, lr=lr, decay=0.3))


def by_hand(model, lr):
    model.requires_grad_(False)
    for stage in (model.layer3, model.layer4, model.fc):
        stage.requires_grad_(True)
    return torch.optim.SGD([{"params": model.fc.parameters(), "lr": lr},
                            {"params": model.layer4.parameters(), "lr": lr * 0.3},
                            {"params": model.layer3.parameters(), "lr": lr * 0.09}],
                           lr=lr, momentum=0.9)


def one_rate(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer3", "layer4")
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)


def typed_numbers(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer3", "layer4")
    return torch.optim.AdamW([{"params": model.fc.parameters(), "lr": 1e-3},
                              {"params": model.layer4.parameters(), "lr": 3e-4},
                              {"params": model.layer3.parameters(), "lr": 9e-5}])


def only_layer4(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer4")
    return torch.optim.AdamW(param_groups(model, lr=lr, decay=0.3))


def everything(model, lr):
    return torch.optim.AdamW(param_groups(model, lr=lr, decay=0.3))


def optimizer_before_unfreezing(model, lr):
    freeze_backbone(model)
    optimizer = torch.optim.AdamW(param_groups(model, lr=lr, decay=0.3))
    unfreeze(model, "layer3", "layer4")
    return optimizer


def wrong_decay(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer3", "layer4")
    return torch.optim.AdamW(param_groups(model, lr=lr, decay=0.1))


def half_a_stage(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer4", "layer3.1")
    model.layer3[0].requires_grad_(False)
    return torch.optim.AdamW(param_groups(model, lr=lr, decay=0.3))


def no_optimizer(model, lr):
    freeze_backbone(model)
    unfreeze(model, "layer3", "layer4")


def check(answer):
    return check_fine_tuning_setup(answer, **OPTIONS)


@pytest.mark.parametrize("answer", [reference_solution, by_hand])
def test_checker_accepts_correct_set_ups(answer):
    result = check(answer)
    assert result.correct, result.message
    assert "10,494,466" in result.message


@pytest.mark.parametrize("wrong, words", [
    (one_rate, ["layer4 learns at 1.0e-03", "lr * 0.3", "move less than the head"]),
    (typed_numbers, ["lr=3.0e-04", "fc learns at 1.0e-03", "the head learns at lr"]),
    (wrong_decay, ["layer4 learns at 1.0e-04", "3.0e-04", "decay=0.3"]),
    (only_layer4, ["layer3 is frozen", "unfreeze(model, 'layer3')"]),
    (everything, ["conv1, bn1, layer1, layer2 still train", "freeze_backbone(model)"]),
    (optimizer_before_unfreezing, ["not in the optimizer", "after unfreezing"]),
    (half_a_stage, ["Only part of layer3", "unfreeze whole stages"]),
    (no_optimizer, ["returned NoneType", "torch.optim.AdamW"]),
])
def test_checker_rejects_common_mistakes_and_names_the_fix(wrong, words):
    result = check(wrong)
    assert not result.correct, wrong.__name__
    for word in words:
        assert word in result.message, result.message
    assert "Fix:" in result.message


def test_checker_rejects_a_model_a_non_function_and_a_bad_signature():
    assert "function itself" in check(resnet18()).message
    assert "Expected a function" in check(3).message

    def no_lr(model):
        return reference_solution(model, 1e-3)

    result = check(no_lr)
    assert not result.correct and "setup_fine_tuning(model, lr)" in result.message

    def broken(model, lr):
        raise KeyError("layer5")

    result = check(broken)
    assert not result.correct and "KeyError" in result.message


def test_checker_leaves_the_learners_objects_and_random_stream_alone():
    calls = []

    def spy(model, lr):
        calls.append(model)
        return reference_solution(model, lr)

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    assert load_bank(BANK).question("fine_tuning_setup").grade(spy).status == "correct"
    assert torch.equal(torch.rand(3), expected)
    assert len(calls) == 2 and calls[0] is not calls[1]  # a fresh model per probe


def test_the_quiz_grades_the_code_question_through_the_checker(tmp_path):
    right = Quiz.from_file(BANK, results_path=tmp_path / "right.json")
    assert right.session.submit("fine_tuning_setup", reference_solution).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    feedback = wrong.session.submit("fine_tuning_setup", one_rate)
    assert feedback.status == "wrong" and "move less than the head" in feedback.message


# --- the lesson as the test suite runs it: real EfficientNet-Lite0 on real photos ------------
# (labkit.instructor.course.INSTALLED, which the suite uses: MODEL_NAME "efficientnet_lite0", PHOTOS "faces")


@pytest.fixture(scope="module")
def real_run():
    from notebook_runs import executed

    return executed(NOTEBOOK).ok()


def test_the_suite_runs_the_lesson_on_installed_real_weights_and_photos(real_run):
    state = real_run.state
    assert (state["MODEL_NAME"], state["PHOTOS"]) == ("efficientnet_lite0", "faces")
    assert state["classes"] == ["faces", "non-faces"]
    assert (state["LAST_STAGE"], state["STAGE_BEFORE"]) == (["conv_head", "bn2"], ["blocks.6"])
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for cell in real_run.cells() for out in cell.outputs)
    assert "STAND-IN" not in text  # nothing in this run has random stand-in weights
