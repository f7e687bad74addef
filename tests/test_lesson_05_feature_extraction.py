"""Lesson 05 (feature extraction): the numbers its prose and quiz state, its claims measured in
smoke size, the two labkit helpers it added (swap_head, plot_projection), and its checker.

The claims, on stand-in ResNet-18 weights and the stand-in ants-vs-bees set:

- a head trained on cached features is the head that training through the frozen backbone
  gives (same seed, no augmentation), and getting it is much faster;
- nothing trainable remains in the frozen backbone, and training leaves every one of its
  tensors, BatchNorm statistics included, as it was; a plain model.train() would not.

Architectures whose numbers are checked are built on the meta device (shapes only, no memory,
no initialisation); nothing is downloaded.
"""

import copy
import json
import time

import matplotlib.pyplot as plt
import pytest
import torch
import torchvision
import yaml
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from conftest import ROOT
from labkit.assets import load_vision_model
from labkit.assets.registry import REGISTRY
from labkit.data import HYMENOPTERA_COUNTS, hymenoptera_folders
from labkit.exercises.transfer_learning import check_feature_extractor
from labkit.features import FeatureLoader, extract_features
from labkit.images import ImageFolder
from labkit.quiz import load_bank
from labkit.train import evaluate, fit
from labkit.transfer import freeze_backbone, parameter_table, replace_head, swap_head
from labkit.vision import count_parameters, weights_summary
from labkit.viz import plot_projection

NOTEBOOK = ROOT / "notebooks" / "05_feature_extraction.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "05_feature_extraction.yaml"
# name -> number of features the head reads, as the comparison table prints them
FEATURES = {"resnet18": 512, "vgg16": 4096, "resnet50": 2048, "inception_v3": 2048,
            "mobilenet_v3_small": 1024}
QUIET = {"progress": False, "plot": False}


def questions():
    return {q["id"]: q for q in yaml.safe_load(BANK.read_text(encoding="utf-8"))["questions"]}


def code_cells():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def meta_model(name):
    """The architecture load_vision_model builds (Inception v3 with its auxiliary head)."""
    kwargs = {"aux_logits": True, "init_weights": False} if name == "inception_v3" else {}
    with torch.device("meta"):
        return getattr(torchvision.models, REGISTRY[name].builder)(weights=None, **kwargs)


# --- the numbers the lesson states -----------------------------------------------------------


def test_parameter_counts_of_the_frozen_resnet18():
    model = meta_model("resnet18")
    assert count_parameters(model, trainable=True) == 11_689_512  # "as published"
    freeze_backbone(replace_head(model, num_classes=2))
    table = parameter_table(model)
    assert table.trainable == (512 + 1) * 2 == 1026
    assert table.total == 11_177_538
    backbone = copy.deepcopy(model)
    swap_head(backbone, nn.Identity())
    assert count_parameters(backbone) == 11_176_512  # "more than eleven million"
    assert count_parameters(backbone, trainable=True) == 0
    bank = load_bank(BANK)
    assert bank.question("head_params").grade("1026").correct
    assert not bank.question("head_params").grade("1024").correct
    assert "11,176,512" in questions()["head_params"]["explanation"]


@pytest.mark.parametrize("name", FEATURES)
def test_each_backbone_gives_the_feature_size_the_lesson_states(name):
    model = meta_model(name)
    head = swap_head(model, nn.Identity())
    crop = weights_summary(REGISTRY[name].enum())["crop"]
    with torch.no_grad():
        features = model.eval()(torch.zeros(2, 3, crop, crop, device="meta"))
    assert tuple(features.shape) == (2, FEATURES[name]) == (2, head.in_features)
    published = REGISTRY[name].enum().meta["num_params"]
    assert count_parameters(model) == published - count_parameters(head)


def test_vgg16_backbone_keeps_two_fully_connected_layers():
    model = meta_model("vgg16")
    swap_head(model, nn.Identity())
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [4096, 4096]
    sizes = {name: count_parameters(headless(name)) for name in FEATURES}
    assert max(sizes, key=sizes.get) == "vgg16"
    assert min(sizes, key=sizes.get) == "mobilenet_v3_small"


def headless(name):
    model = meta_model(name)
    swap_head(model, nn.Identity())
    return model


def test_transforms_and_arithmetic_the_quiz_and_prose_state():
    summaries = {name: weights_summary(REGISTRY[name].enum()) for name in FEATURES}
    crops = {name: s["crop"] for name, s in summaries.items()}
    assert crops == {name: 299 if name == "inception_v3" else 224 for name in FEATURES}
    resizes = {name: REGISTRY[name].enum().transforms().resize_size[0] for name in FEATURES}
    assert resizes["inception_v3"] == 342
    assert {size for name, size in resizes.items() if name != "inception_v3"} == {232, 256}
    assert min(summaries, key=lambda name: summaries[name]["gflops"]) == "mobilenet_v3_small"
    assert load_bank(BANK).question("resnet50_features").grade("2048").correct


def test_validation_noise_numbers():
    assert sum(HYMENOPTERA_COUNTS["train"].values()) == 244
    assert sum(HYMENOPTERA_COUNTS["val"].values()) == 153
    one_photo = 100 / sum(HYMENOPTERA_COUNTS["val"].values())
    assert round(one_photo, 2) == 0.65
    question = load_bank(BANK).question("one_photo")
    assert question.grade(f"{one_photo:.2f}").correct and question.grade("0.65 %").correct
    assert not question.grade("1").correct


def test_the_notebook_compares_with_the_tutorials_range_and_keeps_the_conventions():
    cells = code_cells()
    source = "\n".join(cells)
    assert "TUTORIAL_RANGE = (0.93, 0.96)" in source
    assert 'SMOKE_TEST = env_flag("LABKIT_SMOKE_TEST")' in cells[0]
    assert "standin=STANDIN, offline=OFFLINE" in source
    assert 'Quiz.from_file("quizzes/05_feature_extraction.yaml")' in source
    assert "pretrained" + "=True" not in source and "DEFAULT" not in source


def test_bank_validates_and_names_the_checker():
    bank = load_bank(BANK)
    assert bank.id == "05_feature_extraction"
    assert len(bank.questions) >= 6 and all(q.explanation for q in bank.questions)
    assert bank.question("build_extractor").checker == "feature_extractor"


# --- the claims, in smoke size ----------------------------------------------------------------


PER_CLASS, NUM_EPOCHS, BATCH_SIZE = 2, 12, 2


def per_class(dataset, n):
    return Subset(dataset, [i for label in range(len(dataset.classes))
                            for i in [j for j, t in enumerate(dataset.targets) if t == label][:n]])


def shuffled(dataset, seed):
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def new_head(seed):
    torch.manual_seed(seed)
    return nn.Linear(512, 2)


def timed(function):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


@pytest.fixture(scope="module")
def lesson_run(tmp_path_factory):
    """The lesson's cached and uncached runs on 4 training and 4 validation images."""
    torch.manual_seed(0)
    folders = hymenoptera_folders(standin=True)
    model, weights = load_vision_model("resnet18", standin=True)
    freeze_backbone(replace_head(model, num_classes=2))
    train_images, val_images = (per_class(ImageFolder(folders[split], transform=weights.transforms()),
                                          PER_CLASS) for split in ("train", "val"))
    backbone = copy.deepcopy(model)
    swap_head(backbone, nn.Identity())
    backbone_state = {k: v.clone() for k, v in backbone.state_dict().items()}
    cache = tmp_path_factory.mktemp("features")
    images_seen = []  # one entry per forward pass of the backbone: its batch size

    def count(module, args, output):
        images_seen.append(len(output))

    for net in (backbone, model):
        net.conv1.register_forward_hook(count)

    def cached_run():
        loader = DataLoader(train_images, batch_size=BATCH_SIZE)
        features, labels = extract_features(backbone, loader, "cpu", cache_dir=cache,
                                            refresh=True)
        head = new_head(0)
        fit(head, shuffled(TensorDataset(features, labels), 0), device="cpu",
            num_epochs=NUM_EPOCHS, **QUIET)
        return head

    def uncached_run():
        head = new_head(0)
        swap_head(model, head)
        fit(model, shuffled(train_images, 0), device="cpu", num_epochs=NUM_EPOCHS, **QUIET)
        return head

    cached_run()  # untimed: one-off costs (kernel set-up for these shapes) are paid here
    images_seen.clear()
    cached_head, cached_seconds, cached_cpu = timed(cached_run)
    cached_images = sum(images_seen)
    images_seen.clear()
    uncached_head, uncached_seconds, uncached_cpu = timed(uncached_run)
    uncached_images = sum(images_seen)
    val_features, val_labels = extract_features(backbone, DataLoader(val_images, batch_size=8),
                                                "cpu", cache_dir=cache)
    return {"model": model, "backbone": backbone, "backbone_state": backbone_state,
            "cached_head": cached_head, "uncached_head": uncached_head,
            "cached_seconds": cached_seconds, "uncached_seconds": uncached_seconds,
            "cached_cpu": cached_cpu, "uncached_cpu": uncached_cpu,
            "cached_images": cached_images, "uncached_images": uncached_images,
            "train_size": len(train_images),
            "val_images": val_images, "val_features": val_features, "val_labels": val_labels}


def test_cached_and_uncached_heads_are_the_same_head(lesson_run):
    cached, uncached = lesson_run["cached_head"], lesson_run["uncached_head"]
    assert torch.allclose(cached.weight, uncached.weight, atol=1e-5)
    assert torch.allclose(cached.bias, uncached.bias, atol=1e-5)
    assert not torch.equal(cached.weight, new_head(0).weight)  # both heads did learn
    features = FeatureLoader(lesson_run["val_features"], lesson_run["val_labels"], batch_size=8)
    cached_accuracy = evaluate(cached, features, "cpu")["accuracy"]
    uncached_accuracy = evaluate(lesson_run["model"], DataLoader(lesson_run["val_images"],
                                                                 batch_size=8), "cpu")["accuracy"]
    assert cached_accuracy == uncached_accuracy


def test_caching_is_much_faster(lesson_run):
    # The work: the cached run sends every training image through the backbone once, the
    # uncached run once per epoch.
    assert lesson_run["cached_images"] == lesson_run["train_size"]
    assert lesson_run["uncached_images"] == NUM_EPOCHS * lesson_run["train_size"]
    # The time, on the CPU this process got: other programs on the machine slow both runs'
    # wall time unevenly, much less the CPU time each run needs. The notebook prints the wall
    # time of its own runs.
    speedup = lesson_run["uncached_cpu"] / lesson_run["cached_cpu"]
    assert speedup > 3, (f"CPU time: cached {lesson_run['cached_cpu']:.2f} s, uncached "
                         f"{lesson_run['uncached_cpu']:.2f} s, only {speedup:.1f}x (wall time "
                         f"{lesson_run['cached_seconds']:.2f} s and "
                         f"{lesson_run['uncached_seconds']:.2f} s)")


def test_nothing_in_the_frozen_backbone_trains_or_drifts(lesson_run):
    model, backbone = lesson_run["model"], lesson_run["backbone"]
    assert count_parameters(backbone, trainable=True) == 0
    assert count_parameters(model, trainable=True) == 1026
    # fit trained the model through the whole backbone: every tensor of the backbone,
    # BatchNorm's running statistics included, is still what it was.
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    assert body.keys() == lesson_run["backbone_state"].keys()
    assert all(torch.equal(v, lesson_run["backbone_state"][k]) for k, v in body.items())


def test_plain_train_mode_moves_the_frozen_batchnorm_statistics(lesson_run):
    probe = copy.deepcopy(lesson_run["backbone"])
    before = probe.bn1.running_mean.clone()
    probe.train()  # what a loop calling model.train() does to the frozen backbone
    with torch.no_grad():
        probe(torch.randn(2, 3, 64, 64))
    assert count_parameters(probe, trainable=True) == 0
    assert not torch.equal(before, probe.bn1.running_mean)


# --- swap_head and plot_projection ------------------------------------------------------------


def test_swap_head_gives_features_and_puts_the_head_back():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(images)
        head = swap_head(model, nn.Identity())
        features = model(images)  # (2, 512)
        by_hand = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(
            model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(images))))))))), 1)
        assert torch.equal(features, by_hand)
        assert isinstance(head, nn.Linear) and torch.allclose(head(features), logits)
        assert isinstance(swap_head(model, head), nn.Identity)
        assert torch.equal(model(images), logits)


def test_swap_head_finds_nested_heads_and_refuses_non_modules():
    model = meta_model("vgg16")
    old = model.classifier[6]
    assert swap_head(model, nn.Identity()) is old
    assert isinstance(model.classifier[6], nn.Identity)
    with pytest.raises(TypeError, match="Fix"):
        swap_head(model, "identity")
    with pytest.raises(TypeError, match="does not know where the head"):
        swap_head(nn.Sequential(nn.Linear(2, 2)), nn.Identity())


def test_plot_projection_draws_one_colour_per_class():
    points = torch.randn(10, 2)
    labels = torch.tensor([0] * 4 + [1] * 6)
    ax = plot_projection(points, labels, ["ants", "bees"], title="two classes")
    assert [len(c.get_offsets()) for c in ax.collections] == [4, 6]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ants", "bees"]
    assert ax.get_title() == "two classes"
    with pytest.raises(ValueError, match="Fix"):
        plot_projection(torch.randn(10, 3), labels, ["ants", "bees"])
    plt.close(ax.figure)


# --- the exercise and its checker ---------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook_solution():
    """The make_feature_extractor the notebook ships (its solution cell), run on its own."""
    (source,) = [s for s in code_cells() if "def make_feature_extractor(" in s]
    assert "### BEGIN SOLUTION" in source and "### END SOLUTION" in source
    namespace = {"nn": nn}
    exec(source.split("### END SOLUTION")[0], namespace)  # noqa: S102 - the course's own notebook
    return namespace["make_feature_extractor"]


def test_checker_accepts_the_notebooks_solution(notebook_solution):
    grade = load_bank(BANK).question("build_extractor").grade(notebook_solution)
    assert grade.correct, grade.message
    assert "512 and 2048" in grade.message


def frozen(module):
    return module.requires_grad_(False).eval()


def with_fc(make_fc):
    def make(model):
        model.fc = make_fc(model)
        return frozen(model)
    return make


ACCEPTED = {
    "children and flatten": lambda m: frozen(nn.Sequential(*list(m.children())[:-1], nn.Flatten())),
    "swap_head": lambda m: (swap_head(m, nn.Identity()), frozen(m))[1],
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_checker_accepts_other_correct_extractors(name):
    result = check_feature_extractor(ACCEPTED[name])
    assert result.correct, result.message


def unfrozen(model):
    model.fc = nn.Identity()
    return model.eval()


WRONG = {
    "head kept": (frozen, ["one score per class", "nn.Identity()"]),
    "not frozen": (unfrozen, ["require grad", "requires_grad_(False)"]),
    "train mode": (lambda m: with_fc(lambda _: nn.Identity())(m).train(),
                   ["train mode", "BatchNorm", ".eval()"]),
    "not flattened": (lambda m: frozen(nn.Sequential(*list(m.children())[:-1])),
                      ["not yet flattened", "nn.Flatten()"]),
    "no pooling": (lambda m: frozen(nn.Sequential(*list(m.children())[:-2], nn.Flatten())),
                   ["pooling is missing", "model.avgpool"]),
    "new weights": (lambda m: with_fc(lambda _: nn.Identity())(
        torchvision.models.resnet18(weights=None)), ["other values", "reuse the model"]),
    "a new layer after the pooling": (with_fc(lambda m: nn.Linear(512, 512)),
                                      ["other values", "remove only its head"]),
    "returns a list": (lambda m: list(frozen(m).children()), ["not a module"]),
    "raises": (lambda m: undefined_name, ["NameError", "Fix"]),  # noqa: F821
}


@pytest.mark.parametrize("name", WRONG)
def test_checker_names_each_mistake_and_its_fix(name):
    make, words = WRONG[name]
    result = check_feature_extractor(make)
    assert not result.correct, name
    assert "Fix" in result.message
    for word in words:
        assert word in result.message, (name, word, result.message)


def test_checker_wants_the_function_not_a_model(notebook_solution):
    for answer in (notebook_solution(torchvision.models.resnet18(weights=None)), None):
        result = check_feature_extractor(answer)
        assert not result.correct
        assert 'quiz.answer("build_extractor", make_feature_extractor)' in result.message


def test_grading_leaves_the_random_stream_alone(notebook_solution):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert load_bank(BANK).question("build_extractor").grade(notebook_solution).correct
    assert torch.equal(torch.rand(3), expected)


# --- the lesson as the test suite runs it: real EfficientNet-Lite0 on real photos ------------
# (labkit.instructor.course.INSTALLED, which the suite uses: BACKBONE "efficientnet_lite0", PHOTOS "faces")


def shown(cell):
    """The text a learner sees under a cell: printed text and displayed plain text."""
    return "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for out in cell.outputs)


@pytest.fixture(scope="module")
def real_run():
    from notebook_runs import executed

    return executed(NOTEBOOK).ok()


def test_the_suite_runs_the_lesson_on_installed_real_weights_and_photos(real_run):
    assert (real_run.state["BACKBONE"], real_run.state["PHOTOS"]) == ("efficientnet_lite0", "faces")
    assert real_run.state["class_names"] == ["faces", "non-faces"]
    cells = real_run.cells()
    comparison = next(i for i, cell in enumerate(cells) if "comparison = {BACKBONE" in cell.source)
    banners = [i for i, cell in enumerate(cells) if "STAND-IN" in shown(cell)]
    # Only the comparison of downloaded backbones (named architectures) uses random weights.
    assert banners == [comparison], banners
    table = next(shown(cell) for cell in cells if "images_seen = len(train_images)" in cell.source)
    starred = {line.split()[0] for line in table.splitlines() if line.split()[1:2] == ["*"]}
    assert starred == {"mobilenet_v3_small"}  # the default COMPARE's one downloaded backbone


def test_imagenet_has_no_face_class_so_there_is_no_zero_shot_baseline(real_run):
    assert real_run.state["zero_shot_accuracy"] is None
    categories = REGISTRY["resnet18"].enum().meta["categories"]
    assert [c for c in categories if "face" in c.lower()] == ["face powder"]
    assert {"groom", "scuba diver"} <= set(categories)  # people in a role, as the prose says
    assert {"ant", "bee"} <= set(categories)  # the prose's zero-shot pair for ants and bees
    assert real_run.state["IMAGENET_CLASSES"] == {"ants": "ant", "bees": "bee"}


def test_on_real_weights_the_cached_head_is_the_uncached_head(real_run):
    state = real_run.state
    assert state["weight_gap"] < 1e-5
    assert state["cached_accuracy"] == state["uncached_accuracy"]
    assert state["speedup"] > 1


def test_real_frozen_features_learn_faces_from_four_photos_per_class(real_run):
    state = real_run.state
    assert len(state["SEEDS"]) >= 3
    real = state["comparison"]["efficientnet_lite0"]["accuracies"]
    assert len(real) == len(state["SEEDS"])
    assert min(real) >= 7 / 8, real  # 8 validation photos: at most one wrong, every seed
    assert set(state["comparison"]) == {"efficientnet_lite0", "mobilenet_v3_small"}
    # mobilenet_v3_small has random stand-in weights in CI
    assert max(state["comparison"]["mobilenet_v3_small"]["accuracies"]) < min(real)


def test_the_readme_states_the_accuracies_of_this_run(real_run):
    comparison = real_run.state["comparison"]
    real = comparison["efficientnet_lite0"]["accuracies"]
    random = {a for name, row in comparison.items() if name != "efficientnet_lite0"
              for a in row["accuracies"]}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `05_feature_extraction`"))
    assert set(real) == {1.0} and random == {0.5}, (real, random)
    assert "1.000 on the 8 smoke validation photos with every seed, against 0.500" in row


def test_the_tutorials_figures_are_whole_photos_of_153_and_make_the_range():
    # 0.935 fine-tuning and 0.948 fixed features on the tutorial's page; re-runs reach 0.961.
    photos = sum(HYMENOPTERA_COUNTS["val"].values())
    stated = {0.935: 143, 0.948: 145, 0.961: 147}
    for accuracy, right in stated.items():
        assert round(right / photos, 3) == accuracy
    assert "TUTORIAL_RANGE = (0.93, 0.96)" in "\n".join(code_cells())  # what the lesson uses
    assert 0.93 <= min(stated) and round(max(stated), 2) == 0.96
    prose = " ".join(markdown("## Comparing with the PyTorch tutorial").split())
    for number in ("0.935", "0.948", "0.961", "(143 and 145 of the 153 photos)", "(147 photos)"):
        assert number in prose


def test_both_heads_of_the_cache_comparison_train_in_float32():
    # On a GPU fit runs in bfloat16 unless told otherwise; the comparison must compare like
    # with like, so both of its fit calls pass amp=False.
    source = next(cell for cell in code_cells() if "uncached_head = new_head(SEED)" in cell)
    calls = [line for line in source.splitlines() if line.startswith("fit(")]
    assert len(calls) == 2
    assert source.count("amp=False") == 2


def markdown(heading):
    """The markdown cell that holds a heading."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return next("".join(c["source"]) for c in cells
                if c["cell_type"] == "markdown" and heading in "".join(c["source"]))


def test_the_default_comparison_is_the_one_the_prose_names(real_run):
    # The full comparison of backbones is lesson 10's; 05 compares two small ones by default,
    # EfficientNet-Lite0 among them, the row CI runs on real weights.
    parameters = code_cells()[0]
    assert 'COMPARE = ("mobilenet_v3_small", "efficientnet_lite0")' in parameters
    prose = " ".join(markdown("## Comparing backbones").split())
    assert ("By default `COMPARE` holds two small backbones, MobileNet v3 small and "
            "EfficientNet-Lite0") in prose
    for name in ("vgg16", "resnet50", "inception_v3"):
        assert f'"{name}"' in prose and name in REGISTRY  # the ones a learner may add
    assert real_run.state["COMPARE"] == ["mobilenet_v3_small", "efficientnet_lite0"]


def test_augmented_heads_use_fewer_seeds_than_cached_ones(real_run):
    # Each augmented head runs the backbone in every epoch: the costly runs get fewer seeds.
    state = real_run.state
    assert 'AUGMENTED_SEEDS = (0, 1)' in code_cells()[0]
    assert 2 <= len(state["AUGMENTED_SEEDS"]) < len(state["SEEDS"])  # still a spread
    assert len(state["augmented_accuracies"]) == len(state["AUGMENTED_SEEDS"])
    assert len(state["cached_accuracies"]) == len(state["SEEDS"])
    assert "`AUGMENTED_SEEDS`" in markdown("## Augmentation needs the backbone every epoch")


def test_the_other_face_crops_are_mostly_darker_than_the_faces():
    # The prose warns that brightness alone separates the face photos, even with random weights.
    import numpy as np

    from labkit.data import face_folders

    for root in face_folders().values():
        brightness = {}
        for photo, label in ImageFolder(root):
            brightness.setdefault(label, []).append(np.asarray(photo.convert("L")).mean())
        faces, others = (np.array(brightness[i]) for i in (0, 1))
        assert others.mean() < faces.mean() - 25
        assert (others < np.median(faces)).mean() > 0.7  # "mostly"
    prose = " ".join(markdown("If a panel marked `*`").split())
    assert "the other crops are mostly darker than the faces" in prose
