"""Lesson 03 (ResNet): the numbers its prose and quiz state, the claims its experiments make
(vanishing gradients in part (b), degradation in part (c), named apart), and the
residual_block checker. CPU only, no downloads: models are built with weights=None.

The toy networks and data are the notebook's own code: the cells are read from
notebooks/03_resnet.ipynb by id and executed here, so a change there is tested here. The
training experiment is not run again: its losses are read from the notebook's one execution
in this test run (tests/notebook_runs.py).
"""

import math

import nbformat
import pytest
import torch
import torchvision
import yaml
from torch import nn
from torchvision.models import (ResNet18_Weights, ResNet34_Weights, ResNet50_Weights)

from conftest import ROOT, bank_question
from notebook_runs import executed
from labkit.exercises.architectures import (check_residual_block, projection_shortcut,
                                            torchvision_basic_block)
from labkit.quiz import Quiz
from labkit.quiz.bank import load_bank

NOTEBOOK = ROOT / "notebooks" / "03_resnet.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "03_resnet.yaml"
OPTIONS = {"in_channels": 64, "out_channels": 128, "stride": 2}


def count(module):
    return sum(p.numel() for p in module.parameters())


# --- the numbers the lesson states -----------------------------------------------------------

@pytest.mark.parametrize("builder, weights", [
    ("resnet18", ResNet18_Weights.IMAGENET1K_V1),
    ("resnet34", ResNet34_Weights.IMAGENET1K_V1),
    ("resnet50", ResNet50_Weights.IMAGENET1K_V1),
    ("resnet50", ResNet50_Weights.IMAGENET1K_V2),
])
def test_metadata_parameter_count_matches_the_built_model(builder, weights):
    model = getattr(torchvision.models, builder)(weights=None)
    assert count(model) == weights.meta["num_params"]


@pytest.mark.parametrize("builder, depth", [("resnet18", 18), ("resnet34", 34), ("resnet50", 50)])
def test_the_name_counts_the_weighted_layers_on_the_main_path(builder, depth):
    model = getattr(torchvision.models, builder)(weights=None)
    layers = [name for name, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and "downsample" not in name]
    assert len(layers) == depth


def test_resnet50_v1_and_v2_share_the_architecture_but_not_the_accuracy():
    v1, v2 = ResNet50_Weights.IMAGENET1K_V1.meta, ResNet50_Weights.IMAGENET1K_V2.meta
    assert v1["num_params"] == v2["num_params"] and v1["_ops"] == v2["_ops"]
    gain = v2["_metrics"]["ImageNet-1K"]["acc@1"] - v1["_metrics"]["ImageNet-1K"]["acc@1"]
    assert gain > 4  # the notebook prints it; the quiz's v2_gain asks for it
    question = bank_question(BANK, "v2_gain")
    assert question["answer"] == pytest.approx(gain, abs=question["tolerance"])
    assert v1["recipe"] != v2["recipe"]


def test_projection_cost_in_the_quiz_is_torchvisions():
    block = torchvision_basic_block(64, 128, 2)
    cost = count(block.downsample)
    assert cost == count(projection_shortcut(64, 128, 2)) == 64 * 128 + 2 * 128
    assert bank_question(BANK, "projection_params")["answer"] == cost
    assert torchvision_basic_block(64, 64, 1).downsample is None  # identity: 0 parameters


def test_family_ratios_and_projection_shares_the_prose_states():
    meta = {name: weights.meta for name, weights in [
        ("r18", ResNet18_Weights.IMAGENET1K_V1), ("r34", ResNet34_Weights.IMAGENET1K_V1),
        ("r50", ResNet50_Weights.IMAGENET1K_V1)]}
    acc = {name: m["_metrics"]["ImageNet-1K"]["acc@1"] for name, m in meta.items()}
    # "from ResNet-18 to 34, parameters and operations about double"
    assert 1.8 < meta["r34"]["num_params"] / meta["r18"]["num_params"] < 2.1
    assert 1.8 < meta["r34"]["_ops"] / meta["r18"]["_ops"] < 2.1
    # "ResNet-50 ... under 1.2 times its parameters and operations ... and it is more accurate"
    assert meta["r50"]["num_params"] / meta["r34"]["num_params"] < 1.2
    assert meta["r50"]["_ops"] / meta["r34"]["_ops"] < 1.2
    assert acc["r18"] < acc["r34"] < acc["r50"]
    # "under 2 % of ResNet-18's and ResNet-34's parameters, but about a tenth of ResNet-50's"
    shares = {}
    for builder in ("resnet18", "resnet34", "resnet50"):
        model = getattr(torchvision.models, builder)(weights=None)
        projections = sum(count(m) for n, m in model.named_modules() if n.endswith("downsample"))
        shares[builder] = projections / count(model)
    assert shares["resnet18"] < 0.02 and shares["resnet34"] < 0.02
    assert 0.09 < shares["resnet50"] < 0.12


def test_the_bottleneck_is_much_cheaper_than_a_basic_block_at_256_channels():
    from torchvision.models.resnet import BasicBlock, Bottleneck
    basic, bottleneck = count(BasicBlock(256, 256)), count(Bottleneck(256, 64))
    assert basic > 10 * bottleneck  # the lesson prints the ratio; it is about 17


def test_quiz_bank_is_valid_and_names_the_checker():
    bank = load_bank(BANK)
    assert bank.id == "03_resnet" and len(bank.questions) >= 6
    kinds = {q.kind for q in bank.questions}
    assert {"single", "multiple", "numeric", "order", "code"} <= kinds
    raw = yaml.safe_load(BANK.read_text(encoding="utf-8"))
    assert all(q.get("explanation") for q in raw["questions"])
    assert bank.question("residual_block").checker == "residual_block"
    assert dict(bank.question("residual_block").options) == OPTIONS


def test_the_open_question_is_unscored_and_every_choice_shows_the_model_answer():
    question = load_bank(BANK).question("open_identity_easy")
    assert question.points == 0 and all(choice.correct for choice in question.choices)
    assert question.explanation.startswith("Model answer.")
    for idea in ("F = 0", "degradation", "part (c)", "He et al. (2016)"):
        assert idea in question.explanation, idea


# --- the experiment's claims, with the notebook's own code -----------------------------------

def notebook_namespace():
    cells = {cell.get("id"): cell for cell in nbformat.read(NOTEBOOK, as_version=4).cells}
    namespace = {}
    for cell_id in ("spirals-data", "deep-mlp"):
        exec(cells[cell_id].source, namespace)  # noqa: S102  (the course's own notebook)
    return namespace


@pytest.fixture(scope="module")
def toy():
    return notebook_namespace()


def first_and_last_gradient(toy, seed, he=False, depth=20, **kwargs):
    torch.manual_seed(seed)
    model = toy["DeepMLP"](depth, **kwargs)
    if he:
        model = toy["he_init"](model)
    points, labels = toy["make_spirals"](500, seed=0)
    nn.functional.cross_entropy(model(points), labels).backward()
    norms = [layer.weight.grad.norm().item() for layer in [model.stem, *model.hidden]]
    return norms[0], norms[-1]


@pytest.mark.parametrize("seed", range(5))
def test_at_init_the_plain_nets_first_layer_gets_almost_no_gradient(toy, seed):
    plain_first, plain_last = first_and_last_gradient(toy, seed, residual=False)
    res_first, res_last = first_and_last_gradient(toy, seed, residual=True)
    assert plain_first / plain_last < 1e-4          # vanished on the way down
    assert 1e-2 < res_first / res_last < 1e2        # carried by the identity path
    assert res_first > 1e3 * plain_first


@pytest.mark.parametrize("seed", range(3))
def test_with_batchnorm_the_plain_nets_gradient_does_not_vanish(toy, seed):
    first, last = first_and_last_gradient(toy, seed, residual=False, batch_norm=True)
    assert first / last > 0.1


@pytest.mark.parametrize("seed", range(3))
def test_with_batchnorm_and_he_init_the_deep_plain_nets_first_layer_gets_more_not_less(toy, seed):
    # Part (c)'s set-up: "its first layer gets at least as much gradient as its last hidden layer"
    first, last = first_and_last_gradient(toy, seed, he=True, residual=False, batch_norm=True)
    assert first / last >= 1


def test_part_b_the_deep_plain_net_stays_at_chance_the_others_learn():
    # The notebook's own training run, at its smoke size (50 epochs of SGD with momentum),
    # read from this test run's execution of the notebook. This is the vanishing gradient.
    state = executed(NOTEBOOK).ok().state
    assert state["SMOKE_TEST"] and state["num_epochs"] == 50
    final = {name: history["rows"][-1]["train_loss"]
             for name, history in state["histories"].items()}
    assert set(final) == {"plain, 20 layers", "residual, 20 layers",
                          "plain + BatchNorm, 20 layers"}
    assert len(state["histories"]["plain, 20 layers"]["rows"]) == 50
    assert abs(final["plain, 20 layers"] - math.log(3)) < 0.02
    assert final["residual, 20 layers"] < final["plain, 20 layers"] - 0.3
    assert final["plain + BatchNorm, 20 layers"] < final["plain, 20 layers"] - 0.3


def degradation_runs():
    state = executed(NOTEBOOK).ok().state
    assert state["SMOKE_TEST"] and state["degradation_epochs"] == 10
    assert list(state["DEGRADATION_SEEDS"]) == [0, 1, 2]
    shallow, deep, residual = (state["degradation"][name] for name in
                               ("plain, 2 layers", "plain, 20 layers", "residual, 20 layers"))
    return shallow, deep, residual


def test_part_c_degradation_with_healthy_gradients_in_every_seed():
    # Observed in smoke size (10 epochs, seeds 0, 1, 2; BatchNorm and He initialisation):
    # 2 layers 0.29-0.36, 20 layers 0.64-0.75, residual 20 layers 0.38-0.53.
    shallow, deep, residual = degradation_runs()
    assert min(deep["ratio"]) >= 1                  # nothing vanishes
    for s, d, r in zip(shallow["loss"], deep["loss"], residual["loss"]):
        assert d > s + 0.15                         # deeper plain, worse on its training data
        assert r < d - 0.05                         # the same layers with shortcuts do better
        assert d < math.log(3) - 0.2                # it learns: not the failure of part (b)
    assert all(len(curve) == 10 for curve in deep["curves"])


def test_the_quiz_on_the_degradation_table_matches_what_the_table_shows():
    shallow, deep, residual = degradation_runs()
    observed = {
        "a": min(deep["ratio"]) >= 1,
        "b": all(d > s for s, d in zip(shallow["loss"], deep["loss"])),
        "c": all(d < s for s, d in zip(shallow["loss"], deep["loss"])),  # "fits better"
        "d": all(r < d for r, d in zip(residual["loss"], deep["loss"])),
        "e": all(abs(d - math.log(3)) < 0.02 for d in deep["loss"]),
    }
    question = bank_question(BANK, "read_degradation_table")
    assert {c["id"]: c.get("correct", False) for c in question["choices"]} == observed


def test_the_prose_names_vanishing_gradients_and_degradation_apart():
    cells = {cell.get("id"): " ".join(cell.source.split())  # line breaks read as spaces
             for cell in nbformat.read(NOTEBOOK, as_version=4).cells}
    read = cells["training-read"]
    assert "vanishing" in read and "*not* the degradation" in read
    assert "Nothing vanishes" in cells["degradation-bn-read"]
    assert "What this toy does not show" in cells["degradation-bn-read"]
    assert "He et al.'s (2016)" in cells["degradation-bn-read"]
    prose = " ".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
                     if c.cell_type == "markdown").lower()
    for vague in ("you should see", "usually", "several points", "minutes on a cpu"):
        assert vague not in prose


# --- the residual_block checker ---------------------------------------------------------------

class ResidualBlock(nn.Module):  # the notebook's reference solution
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = projection_shortcut(in_channels, out_channels, stride)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class NoShortcut(ResidualBlock):
    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ShortcutWithoutProjection(ResidualBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = nn.Identity()


class ReluBeforeAddition(ResidualBlock):
    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out))) + self.shortcut(x)


class StrideIgnored(ResidualBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, 1)


class StrideOnSecondConv(ResidualBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1.stride, self.conv2.stride = (1, 1), (stride, stride)


class AlwaysProjection(ResidualBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = projection_shortcut(in_channels, out_channels, stride)


class ConvBiases(ResidualBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)


class NoBatchNormInShortcut(ResidualBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        if isinstance(self.shortcut, nn.Sequential):
            self.shortcut = self.shortcut[0]


class OnlyIdentityShortcut(ResidualBlock):  # adds x only when the shapes happen to match
    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if out.shape == x.shape:
            out = out + x
        return torch.relu(out)


def test_checker_accepts_the_reference_solution_and_torchvisions_block():
    for answer in (ResidualBlock, torchvision_basic_block):
        result = check_residual_block(answer, **OPTIONS)
        assert result.correct, result.message
        assert "8,448" in result.message


def test_checker_accepts_other_shapes_too():
    assert check_residual_block(ResidualBlock, in_channels=16, out_channels=16, stride=1).correct
    assert check_residual_block(ResidualBlock, in_channels=32, out_channels=64, stride=2).correct


@pytest.mark.parametrize("wrong, words", [
    (NoShortcut, ["no shortcut", "relu(F(x) + x)"]),
    (ShortcutWithoutProjection, ["projection", "1x1", "stride=stride"]),
    (ReluBeforeAddition, ["negative", "ReLU", "after the addition"]),
    (StrideIgnored, ["Wrong stride", "4x4", "stride=stride"]),
    (StrideOnSecondConv, ["second 3x3 conv", "first 3x3 conv stride=stride"]),
    (AlwaysProjection, ["identity", "0 parameters"]),
    (ConvBiases, ["bias=False"]),
    (NoBatchNormInShortcut, ["BatchNorm2d after every conv"]),
    (OnlyIdentityShortcut, ["no shortcut", "1x1 conv"]),
])
def test_checker_rejects_common_mistakes_and_names_the_fix(wrong, words):
    result = check_residual_block(wrong, **OPTIONS)
    assert not result.correct
    for word in words:
        assert word in result.message, result.message
    assert "Fix:" in result.message


def test_checker_rejects_an_instance_and_a_bad_signature():
    result = check_residual_block(ResidualBlock(64, 128, 2), **OPTIONS)
    assert not result.correct and "class itself" in result.message

    class NoStride(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()

    result = check_residual_block(NoStride, **OPTIONS)
    assert not result.correct and "__init__(self, in_channels, out_channels, stride=1)" in result.message


def test_grading_leaves_the_learners_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert load_bank(BANK).question("residual_block").grade(ResidualBlock).status == "correct"
    assert torch.equal(torch.rand(3), expected)


def test_the_quiz_grades_the_code_question_through_the_checker(tmp_path):
    right = Quiz.from_file(BANK, results_path=tmp_path / "right.json")
    assert right.session.submit("residual_block", ResidualBlock).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    feedback = wrong.session.submit("residual_block", NoShortcut)
    assert feedback.status == "wrong" and "no shortcut" in feedback.message
