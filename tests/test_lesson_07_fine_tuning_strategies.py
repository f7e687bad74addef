"""Lesson 07 (fine-tuning strategies): the numbers its prose and quiz state, the notebook's own
helpers (one run of the comparison, saving and loading), Inception v3's input, the seed_gaps
checker, and on the suite's real-weights run the claims over three seeds that the README
quotes.

CPU only, nothing downloaded: models are built with weights=None. The helpers are the
notebook's own code: cells are read from notebooks/07_fine_tuning_strategies.ipynb by id and
executed here, so a change there is tested here.
"""

import copy
import math
import re
from pathlib import Path

import nbformat
import pytest
import torch
import torchvision
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import Inception_V3_Weights, ResNet18_Weights

from labkit.data import HYMENOPTERA_COUNTS
from labkit.device import seed_everything
from labkit.exercises.transfer_learning import GAP_PROBES, check_seed_gaps, reference_seed_gaps
from labkit.quiz import Quiz, load_bank
from labkit.transfer import freeze_backbone, param_groups, replace_head, train_mode, unfreeze

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_fine_tuning_strategies.ipynb"
LESSON_06 = ROOT / "notebooks" / "06_fine_tuning.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "07_fine_tuning_strategies.yaml"
STRATEGIES = ("scratch", "feature extraction", "last stage", "full")


def questions():
    return {q["id"]: q for q in yaml.safe_load(BANK.read_text(encoding="utf-8"))["questions"]}


def cells(notebook=NOTEBOOK):
    return {cell.get("id"): cell.source for cell in nbformat.read(notebook, as_version=4).cells}


def prose():
    return "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
                     if c.cell_type == "markdown")


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


def resnet18(num_classes=2, seed=0):
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


# --- the numbers the lesson states -----------------------------------------------------------


def test_one_validation_image_and_the_tutorial_range_in_photos():
    val = sum(HYMENOPTERA_COUNTS["val"].values())
    train = sum(HYMENOPTERA_COUNTS["train"].values())
    assert (train, val) == (244, 153)
    assert round(100 / val, 2) == 0.65 and "worth 0.65 percentage points" in prose()
    # The notebook turns the tutorial's 93-96 % into photos.
    low, high = (round(a * val) for a in (0.93, 0.96))
    assert (low, high, high - low) == (142, 147, 5)
    assert "TUTORIAL_RANGE = (0.93, 0.96)" in cells()["tutorial"]


def test_the_tutorials_figures_in_the_prose_are_whole_photos_of_153():
    text = prose()
    photos = sum(HYMENOPTERA_COUNTS["val"].values())
    for accuracy, right in {"0.935": 143, "0.948": 145, "0.961": 147}.items():
        assert accuracy in text and f"{right / photos:.3f}" == accuracy
    assert "(143 and 145 of the 153 photos)" in text and "(147 photos)" in text


def test_the_gap_or_noise_question_is_two_photos_of_153():
    photos = sum(HYMENOPTERA_COUNTS["val"].values())
    question = " ".join(questions()["gap_or_noise"]["prompt"].split())
    right = next(c for c in questions()["gap_or_noise"]["choices"] if c.get("correct"))
    gap, spreads = 1.3, (1.8, 2.4)
    assert f"{gap} points" in question and f"{photos} validation photos" in question
    assert f"{spreads[0]} and {spreads[1]} points" in question
    assert f"{2 * 100 / photos:.1f}" == str(gap) and gap < min(spreads)
    assert "about two" in right["text"] and f"{100 / photos:.2f} points" in right["explanation"]


def test_preprocessing_sizes_resnet_224_and_inception_299():
    resnet = ResNet18_Weights.IMAGENET1K_V1.transforms()
    inception = Inception_V3_Weights.IMAGENET1K_V1.transforms()
    assert (resnet.resize_size, resnet.crop_size) == ([256], [224])
    assert (inception.resize_size, inception.crop_size) == ([342], [299])
    question = questions()["inception_input"]
    assert question["answer"] == 299
    assert {m["answer"] for m in question["mistakes"]} == {224, 342}


def test_inception_v3_in_training_needs_its_299_pixel_input():
    # The prose: the auxiliary head's 5x5 convolution does not fit on a 224-pixel image's map.
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    replace_head(model, 2)
    train_mode(model)
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 299, 299))
        assert outputs.logits.shape == outputs.aux_logits.shape == (2, 2)
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 3, 224, 224))


def train_step_flops(strategy):
    model = resnet18()
    if strategy in ("feature extraction", "last stage"):
        freeze_backbone(model)
    if strategy == "last stage":
        unfreeze(model, "layer4")
    train_mode(model)
    with FlopCounterMode(display=False) as counter:
        loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1]))
        loss.backward()
    return counter.get_total_flops()


def test_computation_per_step_orders_the_strategies_as_the_quiz_does():
    flops = {s: train_step_flops(s) for s in ("feature extraction", "last stage", "full")}
    order = [item["id"] for item in questions()["time_order"]["items"]]
    assert order == ["feature_extraction", "last_stage", "full"]
    assert flops["feature extraction"] < flops["last stage"] < flops["full"]
    assert flops["full"] > 2 * flops["feature extraction"]  # the backbone's backward pass


# --- the notebook's helpers --------------------------------------------------------------------


def test_the_cells_it_says_are_lesson_06s_are_lesson_06s():
    mine, lesson_06 = cells(), cells(LESSON_06)
    for cell_id in ("data-load", "loaders", "warmup-cosine"):
        assert mine[cell_id] == lesson_06[cell_id], cell_id
    # build_model is the same function; 07 only leaves out 06's parameter table.
    definition = lesson_06["build-model"].split("\ntotal = ")[0]
    assert definition.replace("parameter_table, ", "") == mine["build-model"].split(
        "\ntotal = ")[0]


@pytest.fixture(scope="module")
def namespace():
    """The notebook's loader, build_model, warm-up and comparison cells on small random data."""
    from labkit.train import fit

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 16, 16, generator=generator)
    labels = torch.arange(40) % 2
    return run_cells("loaders", "build-model", "warmup-cosine", "compare-run",
                     train_images=images, train_labels=labels, val_images=images[:10],
                     val_labels=labels[:10], BATCH_SIZE=8,
                     preset=ResNet18_Weights.IMAGENET1K_V1.transforms(), MODEL_NAME="resnet18",
                     pretrained=resnet18(num_classes=1000, seed=123), classes=["ants", "bees"],
                     SEED=0, fit=fit, param_groups=param_groups, HEAD_LR=1e-3, DECAY=0.3,
                     COMPARE_EPOCHS=1, device=torch.device("cpu"), time=__import__("time"))


def test_one_run_of_the_comparison_trains_times_and_returns_its_model(namespace):
    result, model = namespace["run_strategy"]("last stage", 0)
    assert set(result) == {"strategy", "seed", "accuracy", "seconds", "trainable"}
    assert result["trainable"] == 8_394_754  # layer4 and the new head
    assert 0 <= result["accuracy"] <= 1 and result["seconds"] > 0
    # The model handed back is the trained one: its accuracy is the run's.
    from labkit.train import evaluate

    val_loader = namespace["make_loaders"](0)[1]
    assert evaluate(model, val_loader, "cpu")["accuracy"] == result["accuracy"]
    assert not torch.equal(model.layer4[0].conv1.weight,
                           namespace["pretrained_state"]["layer4.0.conv1.weight"])


def test_save_and_load_give_the_same_logits_and_load_only_plain_data(tmp_path):
    namespace = run_cells("save-load", replace_head=replace_head)
    model = resnet18().eval()
    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()
    path = namespace["save_fine_tuned"](model, tmp_path / "sub" / "model.pt", model_name="resnet18",
                                        classes=["ants", "bees"], preprocess=preset)
    loaded, saved = namespace["load_fine_tuned"](path, torch.device("cpu"))
    assert saved["classes"] == ["ants", "bees"] and saved["crop_size"] == [256, 224]
    assert not loaded.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # weights_only=True refuses anything that is not tensors and plain data.
    torch.save({"state_dict": model.state_dict(), "extra": Path("x")}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="weights_only|Weights only"):
        namespace["load_fine_tuned"](tmp_path / "bad.pt", torch.device("cpu"))


def test_preprocess_sizes_of_the_smoke_compose():
    from torchvision import transforms

    namespace = run_cells("save-load")
    compose = transforms.Compose([transforms.Resize(73), transforms.CenterCrop(64),
                                  transforms.ToTensor()])
    assert namespace["preprocess_sizes"](compose) == (73, 64)


def test_the_notebook_follows_the_course_conventions():
    source = cells()
    code = "\n".join(source.values())
    assert "standin=STANDIN, offline=OFFLINE" in source["data-load"]
    assert code.count("hymenoptera_folders(standin=STANDIN, offline=OFFLINE)") == 1
    assert "register_backward_hook" not in code
    assert re.search(r"torch\.load\([^)]*weights_only=True", source["save-load"])
    assert "grad_cam(model, model.get_submodule(last)" in source["gradcam"]
    assert "restore_best" not in source["compare-run"]  # fit's default: the last epoch's weights
    params = parameters()
    assert len(params["SEEDS"]) >= 3 and params["IMAGE_SIZE"] is None
    assert params["DIAGNOSE"] in STRATEGIES and params["DECAY"] == 0.3
    assert (params["MODEL_NAME"], params["PHOTOS"]) == ("resnet18", "hymenoptera")
    assert params["SAVE_DIR"] is None  # a temporary folder: nothing written into the course
    assert "tempfile.TemporaryDirectory" in source["save-run"]
    assert "temporary.cleanup()" in source["clean-up"]  # and nothing left behind in it


# --- the quiz bank and the exercise's checker ------------------------------------------------


def test_bank_validates_and_names_the_checker():
    bank = load_bank(BANK)
    assert bank.id == "07_fine_tuning_strategies" and len(bank.questions) >= 6
    assert all(q.explanation for q in bank.questions)
    assert {"single", "numeric", "order", "code"} <= {q.kind for q in bank.questions}
    assert bank.question("seed_gaps").checker == "seed_gaps"
    moved = {"time_order", "gradcam", "weights_only", "inception_input", "read_confusion",
             "open_gradcam"}
    assert moved <= {q.id for q in bank.questions}
    lesson_06 = load_bank(BANK.parent / "06_fine_tuning.yaml")
    assert not moved & {q.id for q in lesson_06.questions}  # moved, not copied


def notebook_solution():
    """The notebook's own seed_gaps, with its solution."""
    source = cells()["exercise"].split("\n\n\nfor strategy")[0]
    namespace = {}
    exec(source, namespace)  # noqa: S102  (the course's own notebook)
    return namespace["seed_gaps"]


def by_hand(runs, strategy, baseline):
    mine = {run["seed"]: run["accuracy"] for run in runs if run["strategy"] == strategy}
    theirs = {run["seed"]: run["accuracy"] for run in runs if run["strategy"] == baseline}
    return {seed: (mine[seed] - theirs[seed]) * 100 for seed in mine if seed in theirs}


def by_position(runs, strategy, baseline):
    mine = [run for run in runs if run["strategy"] == strategy]
    theirs = [run for run in runs if run["strategy"] == baseline]
    return {a["seed"]: 100 * (a["accuracy"] - b["accuracy"]) for a, b in zip(mine, theirs)}


def fractions(runs, strategy, baseline):
    return {seed: gap / 100 for seed, gap in by_hand(runs, strategy, baseline).items()}


def reversed_sign(runs, strategy, baseline):
    return by_hand(runs, baseline, strategy)


def every_seed(runs, strategy, baseline):
    accuracy = {(run["strategy"], run["seed"]): run["accuracy"] for run in runs}
    seeds = {run["seed"] for run in runs}
    return {seed: 100 * (accuracy.get((strategy, seed), 0) - accuracy.get((baseline, seed), 0))
            for seed in seeds}


def keyed_by_position(runs, strategy, baseline):
    return dict(enumerate(by_hand(runs, strategy, baseline).values()))


def a_list(runs, strategy, baseline):
    return list(by_hand(runs, strategy, baseline).values())


def sorts_the_runs(runs, strategy, baseline):
    runs.sort(key=lambda run: (run["strategy"], run["seed"]))
    return by_hand(runs, strategy, baseline)


def crashes_on_a_missing_seed(runs, strategy, baseline):
    accuracy = {(run["strategy"], run["seed"]): run["accuracy"] for run in runs}
    return {run["seed"]: 100 * (run["accuracy"] - accuracy[baseline, run["seed"]])
            for run in runs if run["strategy"] == strategy}


@pytest.mark.parametrize("answer", [notebook_solution(), by_hand, reference_seed_gaps])
def test_checker_accepts_correct_answers(answer):
    result = check_seed_gaps(answer)
    assert result.correct, result.message


@pytest.mark.parametrize("wrong, words", [
    (by_position, ["not by their position", "Fix:"]),
    (fractions, ["fractions of one", "multiply", "by 100"]),
    (reversed_sign, ["wrong sign", "strategy minus accuracy of baseline"]),
    (every_seed, ["only one of the two strategies", "keep only the seeds"]),
    (keyed_by_position, ["not the runs' seeds", "run['seed']"]),
    (a_list, ["returned a list, not a dictionary", "{seed: gap}"]),
    (sorts_the_runs, ["changed the list of runs", "without sorting"]),
    (crashes_on_a_missing_seed, ["raised KeyError", "skip seeds"]),
])
def test_checker_rejects_usual_mistakes_and_names_the_fix(wrong, words):
    result = check_seed_gaps(wrong)
    assert not result.correct, wrong.__name__
    for word in words:
        assert word in result.message, result.message
    assert "Fix:" in result.message


def test_the_probes_catch_position_pairing_and_one_sided_seeds():
    # Each probe must tell the reference apart from one mistake, or it tests nothing.
    outcomes = [(by_position(runs, s, b) != reference_seed_gaps(runs, s, b),
                 every_seed(runs, s, b) != reference_seed_gaps(runs, s, b))
                for _, runs, s, b in GAP_PROBES]
    assert any(position for position, _ in outcomes)
    assert any(one_sided for _, one_sided in outcomes)
    before = copy.deepcopy(GAP_PROBES)
    check_seed_gaps(sorts_the_runs)
    assert GAP_PROBES == before  # a learner who sorts in place does not spoil the next grading
    assert "Expected a function" in check_seed_gaps(3).message


def test_the_quiz_grades_the_code_question_through_the_checker(tmp_path):
    right = Quiz.from_file(BANK, results_path=tmp_path / "right.json")
    assert right.session.submit("seed_gaps", by_hand).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    feedback = wrong.session.submit("seed_gaps", fractions)
    assert feedback.status == "wrong" and "fractions of one" in feedback.message


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
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for cell in real_run.cells() for out in cell.outputs)
    assert "STAND-IN" not in text  # nothing in this run has random stand-in weights


def test_the_diagnosed_model_is_the_kept_run(real_run):
    state = real_run.state
    kept = next(run for run in state["runs"]
                if (run["strategy"], run["seed"]) == (state["DIAGNOSE"], state["SEEDS"][0]))
    assert state["correct"] == pytest.approx(kept["accuracy"])  # the confusion matrix's model


def test_on_real_weights_every_pretrained_start_beats_scratch_over_three_seeds(real_run):
    accuracy = {strategy: values for strategy, (_, _, values) in real_run.state["accuracy"].items()}
    assert all(len(values) >= 3 for values in accuracy.values()), accuracy
    # Frozen or nearly frozen pre-trained features: better than scratch with every seed.
    for strategy in ("feature extraction", "last stage"):
        assert min(accuracy[strategy]) > max(accuracy["scratch"]), accuracy
    # Full fine-tuning for one epoch moves every weight and is noisier, but still ahead on average.
    mean = {strategy: sum(values) / len(values) for strategy, values in accuracy.items()}
    assert mean["full"] > mean["scratch"] + 0.1, mean
    # The exercise's paired gaps say the same: ahead of scratch with every seed.
    runs = real_run.state["runs"]
    for strategy in ("feature extraction", "last stage"):
        gaps = reference_seed_gaps(runs, strategy, "scratch")
        assert len(gaps) >= 3 and min(gaps.values()) > 0, (strategy, gaps)


def test_the_readme_states_the_numbers_of_this_run(real_run):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines()
            if line.startswith("| `07_fine_tuning_strategies`")]
    assert rows, "README.md's lessons table has no row for `07_fine_tuning_strategies`"
    means = {strategy: mean for strategy, (mean, _, _) in real_run.state["accuracy"].items()}
    stated = ", ".join(f"{strategy} {means[strategy]:.1%}" for strategy in STRATEGIES)
    assert stated in rows[0], (stated, rows[0])
