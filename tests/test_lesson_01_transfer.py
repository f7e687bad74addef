"""Lesson 01: its central claim (transfer beats scratch with few labels), the exercise's
checker, the small network's place in labkit.transfer, and the facts the lesson states."""

import csv
import functools

import pytest
import torch
import yaml
from torch import nn

from labkit.config import shipped_data_dir
from labkit.exercises import CHECKERS
from labkit.few_labels import (LEARNING_RATES, METHODS, SmallCNN, compare_methods, learn_target,
                               pretrain_source, summarise, target_test_set)
from labkit.synthetic import SOURCE_CLASSES, TARGET_CLASSES
from labkit.transfer import freeze_backbone, head_modules, replace_head
from conftest import ROOT
from notebook_runs import executed

BANK = ROOT / "notebooks" / "quizzes" / "01_transfer_learning.yaml"
NOTEBOOK = ROOT / "notebooks" / "01_transfer_learning.ipynb"
GLOSSARY = ROOT / "notebooks" / "quizzes" / "glossary.yaml"
MARGIN = 0.15  # the margin the notebook names: "fails if either margin drops below 15 points"


@functools.cache
def pretrained(seed):
    # The notebook's smoke sizes: 200 source images per class, 6 epochs.
    model, _ = pretrain_source(n_per_class=200, num_epochs=6, device="cpu", seed=seed)
    return model


@pytest.fixture
def backbone_state():
    return pretrained(0).state_dict()


@pytest.mark.parametrize("pretrain_seed", [0, 1])
def test_transfer_beats_scratch_at_the_fewest_labels(pretrain_seed):
    runs = compare_methods(pretrained(pretrain_seed).state_dict(), labels_per_class=(5,), seeds=(0, 1, 2), steps=30,
                           device="cpu", progress=False)
    summary = summarise(runs)
    scratch = [r.accuracy for r in runs if r.method == "scratch"]
    for method in ("frozen", "finetune"):
        transfer = [r.accuracy for r in runs if r.method == method]
        gain = summary[method, 5][0] - summary["scratch", 5][0]
        assert gain >= MARGIN, f"{method} beats scratch by only {gain:.3f}: {summary}"
        assert min(transfer) > max(scratch), f"{method}: a seed did not beat scratch: {summary}"


def test_a_run_is_repeatable_with_its_seed(backbone_state):
    test_set = target_test_set(20)
    first, second = (learn_target("finetune", backbone_state, labels_per_class=5, seed=3,
                                  test_set=test_set, device="cpu", steps=5) for _ in range(2))
    assert first.accuracy == second.accuracy


def test_every_method_gets_the_same_budget_and_data(backbone_state, monkeypatch):
    seen = []
    import labkit.few_labels as few_labels
    real = few_labels.train_one_epoch

    def spy(model, loader, optimizer, *args, **kwargs):
        seen.append((len(loader), [p.numel() for g in optimizer.param_groups for p in g["params"]]))
        return real(model, loader, optimizer, *args, **kwargs)

    monkeypatch.setattr(few_labels, "train_one_epoch", spy)
    test_set = target_test_set(5)
    for method in METHODS:
        learn_target(method, backbone_state, labels_per_class=5, seed=0, test_set=test_set,
                     device="cpu", steps=7)
    assert [steps for steps, _ in seen] == [7, 7, 7]
    trainable = {method: sum(sizes) for method, (_, sizes) in zip(METHODS, seen)}
    assert trainable["frozen"] == 128 * len(TARGET_CLASSES) + len(TARGET_CLASSES)
    assert trainable["scratch"] == trainable["finetune"] > 200_000


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="scratch"):
        learn_target("linear", {}, labels_per_class=5, seed=0, test_set=target_test_set(2),
                     device="cpu")


def test_learning_rates_are_smaller_for_pretrained_weights():
    assert LEARNING_RATES["finetune"] < LEARNING_RATES["scratch"] < LEARNING_RATES["frozen"]


def test_small_cnn_works_with_the_transfer_helpers():
    model = SmallCNN(len(SOURCE_CLASSES))
    assert list(head_modules(model)) == ["fc"]
    replace_head(model, 3)
    freeze_backbone(model)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


# --- the exercise's checker ---------------------------------------------------------------

def reference_solution(backbone_state):
    model = SmallCNN(len(SOURCE_CLASSES))
    model.load_state_dict(backbone_state)
    model.fc = nn.Linear(model.fc.in_features, len(TARGET_CLASSES))
    return freeze_backbone(model)


def test_checker_accepts_the_reference_solution(backbone_state):
    result = CHECKERS["pretrained_frozen"](reference_solution(backbone_state), num_classes=3)
    assert result.correct, result.message


def test_checker_rejects_a_random_backbone():
    model = SmallCNN(len(SOURCE_CLASSES))
    model.fc = nn.Linear(128, 3)
    result = CHECKERS["pretrained_frozen"](freeze_backbone(model), num_classes=3)
    assert not result.correct and "load_state_dict" in result.message


def test_checker_rejects_the_old_head(backbone_state):
    model = SmallCNN(len(SOURCE_CLASSES))
    model.load_state_dict(backbone_state)
    result = CHECKERS["pretrained_frozen"](freeze_backbone(model), num_classes=3)
    assert not result.correct and "5 outputs" in result.message and "num_classes=3" in result.message


def test_checker_rejects_a_trainable_backbone(backbone_state):
    model = reference_solution(backbone_state)
    model.features.requires_grad_(True)
    result = CHECKERS["pretrained_frozen"](model, num_classes=3)
    assert not result.correct and "still trainable" in result.message


def test_checker_rejects_drifting_batchnorm(backbone_state):
    model = reference_solution(backbone_state).train()  # model.train() undoes the eval mode
    result = CHECKERS["pretrained_frozen"](model, num_classes=3)
    assert not result.correct and "train_mode(model)" in result.message


def test_checker_leaves_the_model_alone(backbone_state):
    model = reference_solution(backbone_state)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    CHECKERS["pretrained_frozen"](model, num_classes=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- facts the lesson states -----------------------------------------------------------------

def ilsvrc():
    with open(shipped_data_dir() / "history" / "ilsvrc_top5.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_ilsvrc_table_is_one_winner_per_year_and_improving():
    rows = ilsvrc()
    assert [int(r["year"]) for r in rows] == list(range(2010, 2016))
    errors = [float(r["top5_error_percent"]) for r in rows]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert [r["uses_cnn"] for r in rows] == ["false"] * 2 + ["true"] * 4
    for row in rows:
        assert row["source"] == f"https://image-net.org/challenges/LSVRC/{row['year']}/results"
    # The lesson says the largest one-year fall came in 2012, when a CNN first won.
    drops = {int(b["year"]): float(a["top5_error_percent"]) - float(b["top5_error_percent"])
             for a, b in zip(rows, rows[1:])}
    assert max(drops, key=drops.get) == 2012


def test_quiz_numbers_match_what_the_lesson_computes(backbone_state):
    questions = {q["id"]: q for q in yaml.safe_load(BANK.read_text())["questions"]}
    rows = {int(r["year"]): float(r["top5_error_percent"]) for r in ilsvrc()}
    assert questions["history_drop"]["answer"] == pytest.approx(rows[2011] - rows[2012])
    model = reference_solution(backbone_state)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert questions["frozen_trainable"]["answer"] == trainable
    assert questions["frozen_setup"]["options"]["num_classes"] == len(TARGET_CLASSES)


def test_real_pretrained_features_beat_scratch_on_real_photos_with_few_labels():
    """The lesson's last part, read from its run in this test run: EfficientNet-Lite0's real
    ImageNet features against a SmallCNN from scratch, faces against non-faces (lfw_subset)."""
    state = executed(NOTEBOOK).ok().state
    counts, seeds = state["REAL_LABELS"], state["REAL_SEEDS"]
    assert max(counts) <= 10 and len(seeds) >= 3
    runs = {key: values for key, values in state["real_runs"].items()}
    for count in counts:
        frozen = runs[repr(("pre-trained, frozen", count))]
        scratch = runs[repr(("scratch", count))]
        assert len(frozen) == len(scratch) == len(seeds)
        assert sum(frozen) / len(frozen) > sum(scratch) / len(scratch), (count, frozen, scratch)
    fewest = min(counts)
    frozen, scratch = runs[repr(("pre-trained, frozen", fewest))], runs[repr(("scratch", fewest))]
    assert min(frozen) > max(scratch) + 0.1, (frozen, scratch)  # on every seed, by 10 points


def test_the_history_cites_the_work_behind_reused_imagenet_features():
    import nbformat

    path = ROOT / "notebooks" / "01_transfer_learning.ipynb"
    prose = " ".join(c.source for c in nbformat.read(path, as_version=4).cells
                     if c.cell_type == "markdown")
    prose = " ".join(prose.split())
    for work in ('Donahue et al. (2014, "DeCAF',
                 'Razavian et al. (2014, "CNN Features off-the-shelf',
                 'Yosinski et al. (2014, "How transferable',
                 'Kornblith et al. (2019, "Do Better'):
        assert work in prose, work


# --- ImageNet's origin and AlexNet's ingredients (issue 20) ----------------------------------

def _prose():
    import nbformat

    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    return " ".join(" ".join(c.source for c in cells if c.cell_type == "markdown").split())


def test_the_history_cites_where_imagenet_and_alexnet_come_from():
    prose = _prose()
    for work in ('Deng et al. 2009, "ImageNet: A Large-Scale Hierarchical Image Database"',
                 'Russakovsky et al. 2015, "ImageNet Large Scale Visual Recognition Challenge"',
                 'Krizhevsky, Sutskever and Hinton 2012, "ImageNet Classification with Deep '
                 'Convolutional Neural Networks"',
                 'Krizhevsky 2014, "One weird trick for parallelizing convolutional neural '
                 'networks"',
                 "Simonyan and Zisserman 2015"):
        assert work in prose, work
    # How ImageNet was built and labelled, and what AlexNet combined.
    for fact in ("WordNet", "*synsets*", "image search engines", "Amazon Mechanical Turk",
                 "3.2 million images in 5,247 synsets", "1.28 million training images",
                 "two GTX 580 cards", "**ReLU**", "**dropout**", "**data augmentation**",
                 "**local response normalisation**"):
        assert fact in prose, fact


def test_imagenet_class_counts_are_read_from_what_is_installed():
    from torchvision.models import ResNet18_Weights, VGG16_Weights

    state = executed(NOTEBOOK).ok().state
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    # "ImageNet's 1,000 classes", "a subset of 1,000 synsets": read in the notebook, twice.
    assert len(state["categories"]) == len(categories) == 1000
    assert state["lite0_classes"] == 1000
    assert VGG16_Weights.IMAGENET1K_V1.meta["categories"] == categories
    assert len(state["terriers"]) == sum(name.endswith("terrier") for name in categories) > 10
    # "ImageNet has no 'face' class": the one class name with the word is an object.
    assert [name for name in categories if "face" in name.lower().split()] == ["face powder"]


def test_the_real_photo_head_has_the_weights_the_lesson_states():
    from labkit.assets import vision_architecture
    from labkit.vision import count_parameters

    lite0 = vision_architecture("efficientnet_lite0")
    assert lite0.num_features == 1280 and lite0.get_classifier().out_features == 1000
    assert count_parameters(nn.Linear(lite0.num_features, 2)) == 2562


def test_torchvision_alexnet_has_the_ingredients_the_lesson_lists():
    import torchvision

    with torch.device("meta"):
        alexnet = torchvision.models.alexnet(weights=None)
    leaves = [m for m in alexnet.modules() if not list(m.children())]
    kinds = [type(m) for m in leaves]
    assert kinds.count(nn.Conv2d) == 5 and kinds.count(nn.Linear) == 3  # 5 conv + 3 fc
    assert nn.LocalResponseNorm not in kinds  # "without that normalisation"
    dropouts = [m for m in leaves if isinstance(m, nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]  # before the first two fully connected layers
    assert sum(p.numel() for p in alexnet.parameters()) == \
        torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]
    state = executed(NOTEBOOK).ok().state
    assert state["layers"] == {"Conv2d": 5, "ReLU": 7, "MaxPool2d": 3, "AdaptiveAvgPool2d": 1,
                               "Dropout": 2, "Linear": 3}


def test_dropout_behaves_as_the_lesson_and_quiz_say():
    dropout = nn.Dropout(p=0.5)
    torch.manual_seed(0)
    out = dropout.train()(torch.ones(10_000))
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept values scaled by 1/(1 - p)
    assert abs(out.mean().item() - 1) < 0.05  # so on average nothing changes
    assert torch.equal(dropout.eval()(torch.ones(8)), torch.ones(8))
    question = {q["id"]: q for q in yaml.safe_load(BANK.read_text())["questions"]}["read_dropout"]
    assert [c["id"] for c in question["choices"] if c.get("correct")] == ["a", "b"]


def test_the_glossary_says_relu_is_in_the_next_lessons_networks():
    """"VGG, ResNet and Inception use it too" (the glossary's ReLU)."""
    import importlib
    import inspect

    import torchvision

    for builder in (torchvision.models.vgg16, torchvision.models.resnet50):
        with torch.device("meta"):
            model = builder(weights=None)
        assert any(isinstance(m, nn.ReLU) for m in model.modules()), builder.__name__
    # torchvision's Inception blocks call the function rather than hold an nn.ReLU.
    for name in ("googlenet", "inception"):
        module = importlib.import_module(f"torchvision.models.{name}")
        assert "F.relu(" in inspect.getsource(module.BasicConv2d.forward), name
    terms = {t["term"]: t for t in yaml.safe_load(GLOSSARY.read_text())["terms"]}
    assert "VGG, ResNet and Inception use it too" in " ".join(terms["ReLU"]["definition"].split())
    for term in ("ImageNet", "synset", "ILSVRC", "AlexNet", "ReLU", "dropout",
                 "local response normalisation"):
        assert terms[term]["lesson"] == "01_transfer_learning", term
