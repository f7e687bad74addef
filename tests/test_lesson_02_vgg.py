"""Lesson 02 (VGG): the numbers its prose and quiz state, and the vgg_block checker.

The model is built on PyTorch's "meta" device: real shapes and parameter counts, no memory and
no random initialisation, so these tests need neither weights nor a download.
"""

import json

import pytest
import torch
import torchvision
from torch import nn

from conftest import ROOT
from labkit.exercises import CHECKERS
from labkit.quiz import load_bank
from notebook_runs import executed

NOTEBOOK = ROOT / "notebooks" / "02_vgg.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "02_vgg.yaml"
WEIGHTS = torchvision.models.VGG16_Weights.IMAGENET1K_V1


@pytest.fixture(scope="module")
def vgg16():
    with torch.device("meta"):
        return torchvision.models.vgg16(weights=None)


@pytest.fixture(scope="module")
def bank():
    return load_bank(BANK)


@pytest.fixture(scope="module")
def notebook_vgg_block():
    """The vgg_block the notebook ships (its solution cell), run on its own."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (source,) = [s for s in sources if "def vgg_block(" in s]
    assert "### BEGIN SOLUTION" in source and "### END SOLUTION" in source
    namespace = {"nn": nn}
    exec(source, namespace)  # noqa: S102 - the course's own notebook
    return namespace["vgg_block"]


def count(module):
    return sum(p.numel() for p in module.parameters())


# --- the numbers the lesson states -------------------------------------------------------

def test_parameter_counts_match_the_weights_metadata(vgg16):
    total = count(vgg16)
    assert total == WEIGHTS.meta["num_params"] == 138_357_544
    assert count(vgg16.features) == 14_714_688
    fc6, fc7, fc8 = [m for m in vgg16.classifier if isinstance(m, nn.Linear)]
    assert (fc6.in_features, fc6.out_features) == (25088, 4096) == (512 * 7 * 7, 4096)
    assert count(fc6) == 102_764_544
    assert count(fc8) == 4_097_000
    # The quiz and prose: classifier "almost 90 %", fc6 "about three quarters",
    # convolutions "roughly a tenth", fc8 "about 3 %".
    assert round(count(vgg16.classifier) / total, 3) == 0.894
    assert round(count(fc6) / total, 3) == 0.743
    assert round(count(vgg16.features) / total, 3) == 0.106
    assert round(count(fc8) / total, 2) == 0.03
    largest = max(vgg16.modules(), key=lambda m: count(m) if not list(m.children()) else 0)
    assert largest is fc6


def test_weight_count_ratios_of_stacked_3x3_convolutions():
    c = 16
    def weights(kernel, layers):
        return count(nn.Sequential(*[nn.Conv2d(c, c, kernel, bias=False) for _ in range(layers)]))
    assert weights(3, 2) == 18 * c * c and weights(5, 1) == 25 * c * c
    assert weights(3, 3) / weights(7, 1) == pytest.approx(27 / 49)
    assert round(27 / 49, 2) == 0.55  # "about 55 %" in the quiz


def _multiply_adds(model, size=224):
    macs = []

    def hook(module, args, output):
        if isinstance(module, nn.Conv2d):
            macs.append(("conv", output[0].numel() * module.in_channels * 9))
        else:
            macs.append(("linear", module.in_features * module.out_features))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model(torch.zeros(1, 3, size, size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return macs


def test_multiply_adds_match_the_weights_metadata_and_live_in_the_convolutions(vgg16):
    macs = _multiply_adds(vgg16)
    total = sum(v for _, v in macs)
    assert total / 1e9 == pytest.approx(WEIGHTS.meta["_ops"], abs=0.005)
    conv = sum(v for kind, v in macs if kind == "conv")
    assert conv / total > 0.99  # "almost all of the arithmetic"


def test_the_weights_file_is_the_float32_parameters():
    assert WEIGHTS.meta["num_params"] * 4 / 2**20 == pytest.approx(WEIGHTS.meta["_file_size"],
                                                                    abs=0.05)


def test_features_output_shape_matches_the_quiz(vgg16, bank):
    shape = tuple(vgg16.features(torch.zeros(1, 3, 224, 224, device="meta")).shape[1:])
    assert shape == (512, 7, 7)
    assert bank.question("features_shape").grade("512x7x7").correct
    assert not bank.question("features_shape").grade("512x14x14").correct


def _measured_extent(layers, size):
    """Width of the input square that the middle output pixel depends on (gradient != 0)."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    y = nn.Sequential(*layers)(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    return int((x.grad[0, 0] != 0).any(dim=0).sum())


def _ones_conv():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    nn.init.ones_(conv.weight)  # positive weights: no two paths cancel
    return conv


@pytest.mark.parametrize("num_layers", [1, 2, 3, 4])
def test_receptive_field_of_stacked_3x3_is_2n_plus_1(num_layers):
    assert _measured_extent([_ones_conv() for _ in range(num_layers)], 33) == 2 * num_layers + 1


def test_receptive_field_question_answer_is_measured(bank):
    assert _measured_extent([_ones_conv() for _ in range(3)], 33) == 7
    assert bank.question("receptive_field").grade("7").correct
    assert not bank.question("receptive_field").grade("9").correct


def test_receptive_fields_of_vgg16_blocks(vgg16):
    """The notebook's recurrence r += (k-1)*j, j *= s, checked by gradients through a
    one-channel copy of VGG16's layout (average pooling, so every path carries gradient)."""
    recurrence, rf, jump = [], 1, 1
    layers, measured = [], []
    for layer in vgg16.features:
        if isinstance(layer, nn.Conv2d):
            rf, jump = rf + 2 * jump, jump
            layers.append(_ones_conv())
        elif isinstance(layer, nn.MaxPool2d):
            rf, jump = rf + jump, jump * 2
            layers.append(nn.AvgPool2d(2, 2))
            recurrence.append(rf)
            measured.append(_measured_extent(list(layers), 512))
    assert recurrence == measured == [6, 16, 44, 100, 212]


def test_conv_parameter_question_matches_nn_conv2d(bank):
    layer = nn.Conv2d(64, 128, kernel_size=3, padding=1)
    assert count(layer) == 73_856
    assert bank.question("conv_params").grade(str(count(layer))).correct
    assert not bank.question("conv_params").grade("73728").correct


# --- the exercise and its checker --------------------------------------------------------

def test_the_notebooks_blocks_are_vgg16_features(notebook_vgg_block, vgg16):
    blocks, in_channels = [], 3
    for num_convs, out_channels in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]:
        blocks += list(notebook_vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    ours = nn.Sequential(*blocks)
    theirs = {k: tuple(v.shape) for k, v in vgg16.features.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs
    assert [type(m) for m in ours] == [type(m) for m in vgg16.features]


def vgg_block_parameters(num_convs, in_channels, out_channels):
    """Weights and biases of a VGG block: 3x3 kernels, one bias per output channel."""
    inputs = [in_channels] + [out_channels] * (num_convs - 1)
    return sum(9 * c_in * out_channels + out_channels for c_in in inputs)


def test_checker_accepts_the_notebooks_solution(bank, notebook_vgg_block):
    question = bank.question("build_block")
    assert question.checker == "vgg_block"
    grade = question.grade(notebook_vgg_block)
    assert grade.correct, grade.message
    options = dict(question.options)
    assert str(vgg_block_parameters(**options)) in grade.message.replace(",", "")


def _block(num_convs, in_channels, out_channels, *, kernel=3, padding=1, stride=1, bias=True,
           relu=True, pool_in_loop=False, keep_in_channels=False, pool=None):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel, padding=padding,
                                stride=stride, bias=bias))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        if pool_in_loop:
            layers.append(nn.MaxPool2d(2, 2))
        if not keep_in_channels:
            in_channels = out_channels
    if not pool_in_loop:
        layers.append(pool if pool is not None else nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


WRONG = {
    "padding 0": (lambda n, i, o: _block(n, i, o, padding=0), ["padding 0", "shrinks", "padding=1"]),
    "no ReLU": (lambda n, i, o: _block(n, i, o, relu=False), ["ReLU", "nn.ReLU(inplace=True)"]),
    "pool in loop": (lambda n, i, o: _block(n, i, o, pool_in_loop=True),
                     ["exactly one max-pool", "after the loop"]),
    "channels": (lambda n, i, o: _block(n, i, o, keep_in_channels=True),
                 ["128 -> 256", "every later one takes out_channels"]),
    "stride 2": (lambda n, i, o: _block(n, i, o, stride=2), ["stride", "stride=1"]),
    "5x5 kernel": (lambda n, i, o: _block(n, i, o, kernel=5, padding=2), ["3x3", "kernel_size=3"]),
    "no bias": (lambda n, i, o: _block(n, i, o, bias=False), ["bias", "bias=True"]),
    "average pool": (lambda n, i, o: _block(n, i, o, pool=nn.AvgPool2d(2)),
                     ["AvgPool2d", "nn.MaxPool2d(kernel_size=2, stride=2)"]),
    "pool 3x3": (lambda n, i, o: _block(n, i, o, pool=nn.MaxPool2d(3, 2)),
                 ["kernel_size 3", "nn.MaxPool2d(kernel_size=2, stride=2)"]),
    "batch norm": (lambda n, i, o: nn.Sequential(*[m for pair in zip(
        _block(n, i, o)[:-1:2], [nn.BatchNorm2d(o) for _ in range(n)],
        _block(n, i, o)[1::2]) for m in pair], nn.MaxPool2d(2)), ["BatchNorm2d", "remove it"]),
    "hard-coded sizes": (lambda n, i, o: _block(3, 128, 256), ["uses its arguments"]),
    "returns a list": (lambda n, i, o: list(_block(n, i, o)), ["nn.Sequential(*layers)"]),
    "raises": (lambda n, i, o: undefined_name, ["NameError", "Fix"]),  # noqa: F821
}


@pytest.mark.parametrize("name", list(WRONG))
def test_checker_rejects_a_wrong_block_and_names_the_fix(bank, name):
    function, words = WRONG[name]
    grade = bank.question("build_block").grade(function)
    assert not grade.correct, name
    assert "Fix" in grade.message
    for word in words:
        assert word in grade.message, (name, word, grade.message)


def test_checker_wants_the_function_not_a_block(bank, notebook_vgg_block):
    for answer in (notebook_vgg_block(3, 128, 256), None):
        grade = bank.question("build_block").grade(answer)
        assert not grade.correct
        assert 'quiz.answer("build_block", vgg_block)' in grade.message


def test_checker_accepts_nested_containers_and_a_reused_relu():
    relu = nn.ReLU()  # one instance used after every conv: legal, and modules() lists it once

    def vgg_block(num_convs, in_channels, out_channels):
        convs = []
        for k in range(num_convs):
            convs += [nn.Conv2d(in_channels if k == 0 else out_channels, out_channels, 3,
                                padding="same"), relu]
        return nn.Sequential(nn.Sequential(*convs), nn.MaxPool2d(2))

    result = CHECKERS["vgg_block"](vgg_block, num_convs=3, in_channels=128, out_channels=256)
    assert result.correct, result.message


def test_checker_leaves_the_learners_blocks_alone():
    built = {}

    def vgg_block(num_convs, in_channels, out_channels):
        key = (num_convs, in_channels, out_channels)
        built.setdefault(key, _block(*key))
        return built[key]

    CHECKERS["vgg_block"](vgg_block, num_convs=3, in_channels=128, out_channels=256)
    before = {k: {n: t.clone() for n, t in b.state_dict().items()} for k, b in built.items()}
    result = CHECKERS["vgg_block"](vgg_block, num_convs=3, in_channels=128, out_channels=256)
    assert result.correct
    for key, block in built.items():
        assert block.training
        assert all(torch.equal(t, before[key][n]) for n, t in block.state_dict().items())


# --- VGG19 beside VGG16 (issue 20) -----------------------------------------------------------

VGG19_WEIGHTS = torchvision.models.VGG19_Weights.IMAGENET1K_V1


@pytest.fixture(scope="module")
def vgg19():
    with torch.device("meta"):
        return torchvision.models.vgg19(weights=None)


def _convs_per_block(model):
    counts, current = [], 0
    for layer in model.features:
        current += isinstance(layer, nn.Conv2d)
        if isinstance(layer, nn.MaxPool2d):
            counts.append(current)
            current = 0
    return counts


def test_vgg19_is_configuration_e_one_more_conv_in_blocks_3_to_5(vgg16, vgg19):
    assert _convs_per_block(vgg16) == [2, 2, 3, 3, 3]   # D: 13 convs + 3 fc = 16
    assert _convs_per_block(vgg19) == [2, 2, 4, 4, 4]   # E: 16 convs + 3 fc = 19
    assert {k: v.shape for k, v in vgg16.classifier.state_dict().items()} == \
        {k: v.shape for k, v in vgg19.classifier.state_dict().items()}


def test_vgg19_parameter_and_multiply_add_counts(vgg16, vgg19):
    total16, total19 = count(vgg16), count(vgg19)
    assert total19 == VGG19_WEIGHTS.meta["num_params"] == 143_667_240
    extra = 590_080 + 2 * 2_359_808  # one 256->256 and two 512->512 3x3 convolutions
    assert total19 - total16 == extra == 5_309_696
    assert count(nn.Conv2d(512, 512, 3, padding=1)) == 2_359_808  # the quiz's answer
    macs16 = sum(v for _, v in _multiply_adds(vgg16))
    macs19 = sum(v for _, v in _multiply_adds(vgg19))
    assert macs19 / 1e9 == pytest.approx(VGG19_WEIGHTS.meta["_ops"], abs=0.005)
    # The prose: "a few percent to the parameters ... about a quarter to the multiply-adds".
    assert 0.03 < extra / total16 < 0.04
    assert 0.25 < (macs19 - macs16) / macs16 < 0.30


def test_the_notebook_prints_the_vgg19_comparison_from_the_architectures():
    state = executed(NOTEBOOK).ok().state
    (params16, madds16), (params19, madds19) = state["totals"]["VGG16"], state["totals"]["VGG19"]
    assert (params16, params19) == (138_357_544, 143_667_240)
    assert madds16 / 1e9 == pytest.approx(WEIGHTS.meta["_ops"], abs=0.005)
    assert madds19 / 1e9 == pytest.approx(VGG19_WEIGHTS.meta["_ops"], abs=0.005)
    extra = [(b[1] - a[1], b[2] - a[2]) for a, b in zip(state["costs"]["VGG16"],
                                                          state["costs"]["VGG19"])]
    assert [p for p, _ in extra] == [0, 0, 590_080, 2_359_808, 2_359_808]
    assert extra[3][1] == 4 * extra[4][1]  # block 4's extra conv: 4x block 5's multiply-adds
    # The accuracies are quoted from torchvision's metadata, and the prose says so.
    assert state["accuracy"]["VGG19"] == VGG19_WEIGHTS.meta["_metrics"]["ImageNet-1K"]
    assert state["accuracy"]["VGG16"] == WEIGHTS.meta["_metrics"]["ImageNet-1K"]
    assert 0 < state["top1_gain"] < 1  # "under one point more top-1 accuracy"


def test_the_vgg19_prose_cites_its_sources():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    prose = " ".join(" ".join("".join(c["source"]) for c in cells
                              if c["cell_type"] == "markdown").split())
    for claim in ("VGG16 is configuration D and VGG19 is E (Simonyan and Zisserman 2015)",
                  "The accuracies are not measured here", "torchvision's weights metadata",
                  "stopped improving at 19 layers"):
        assert claim in prose, claim


def test_read_vgg19_question_matches_the_printout(bank):
    question = bank.question("read_vgg19")
    assert sorted(c.id for c in question.choices if c.correct) == ["a", "b"]
    assert bank.question("vgg19_extra_conv").grade("2359808").correct
    assert not bank.question("vgg19_extra_conv").grade("2359296").correct
