"""Checkers for lessons 01 (transfer learning), 05 (feature extraction), 06 (fine-tuning) and
07 (fine-tuning strategies)."""

import copy
import math

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from labkit.exercises.checks import (Mistake, attempt, batchnorms, checker,
                                     drifting_batchnorms, forward, require)
from labkit.transfer import head_modules
from labkit.vision import count_parameters


@checker()
def check_pretrained_frozen(model, *, num_classes: int) -> str:
    """Lesson 01: a pre-trained, frozen backbone (BatchNorm in eval mode) and a trainable head."""
    require(isinstance(model, nn.Module), f"Expected a model (a torch.nn.Module), got a "
                                          f"{type(model).__name__}. Fix: pass the model itself.")
    try:
        name, head = next(iter(head_modules(model).items()))
    except TypeError as error:  # a model whose head labkit cannot find; the message has the fix
        raise Mistake(str(error)) from None
    backbone = count_parameters(model, trainable=True) - count_parameters(head, trainable=True)
    require(not backbone, f"The backbone is still trainable: {backbone:,} parameters require "
                          f"grad. Fix: freeze_backbone(model).")
    require(count_parameters(head, trainable=True) == count_parameters(head), f"The head is "
            f"frozen too, so it would not learn. Fix: model.{name}.requires_grad_(True).")
    drifting = len(drifting_batchnorms(model))
    require(not drifting, f"{drifting} frozen BatchNorm layers are in train mode: their statistics "
            f"would move. Fix: freeze_backbone(model), then train with train_mode(model).")
    outputs = getattr(head, "out_features", None)
    require(outputs == num_classes, f"The head model.{name} has {outputs} outputs but the task "
            f"has {num_classes} classes. Fix: replace_head(model, num_classes={num_classes}).")
    fresh = [not m.num_batches_tracked and not m.running_mean.any() and (m.running_var == 1).all()
             for m in batchnorms(model) if m.track_running_stats]  # never saw a batch
    require(not fresh or not all(fresh), "The backbone has fresh random weights: its BatchNorm "
            "layers never saw an image. Fix: model.load_state_dict(backbone_state) first.")
    return (f"Well done: the pre-trained backbone is frozen; only its head's "
            f"{count_parameters(head):,} parameters train.")


@checker('quiz.answer("build_extractor", make_feature_extractor)', "the function")
def check_feature_extractor(make_feature_extractor) -> str:
    """Lesson 05: a frozen module in eval mode that returns the (B, D) features a head reads."""
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)  # two small ResNets; grading restores the learner's random stream
    probes = {"ResNet of basic blocks": ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10),
              "ResNet of bottleneck blocks": ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10)}
    sizes = " and ".join(str(model.fc.in_features) for model in probes.values())
    for name, model in probes.items():
        reference, (num_classes, features) = copy.deepcopy(model).eval(), model.fc.weight.shape
        reference.fc = nn.Identity()
        with torch.no_grad():
            expected = reference(images)  # (B, D): what the head reads
        extractor = attempt(f"make_feature_extractor on a {name}", "take a torchvision ResNet "
                            "and return a module: the model, changed, or an nn.Sequential.",
                            make_feature_extractor, model, returns=nn.Module)
        require(not count_parameters(extractor, trainable=True), "The extractor's parameters "
                "still require grad. Fix: extractor.requires_grad_(False).")
        require(not drifting_batchnorms(extractor), "BatchNorm layers are in train mode, so a "
                "photo's features would depend on its batch. Fix: return extractor.eval().")
        output = forward(f"The extractor of a {name}", "keep the model's layers in their order.",
                         extractor, images)
        shape = tuple(output.shape)
        require(shape == expected.shape, f"For a {name} the extractor returns {shape}: " + (
            "one score per class of the old head. Fix: model.fc = nn.Identity()."
            if shape == (2, num_classes) else
            "the pooled features, not yet flattened. Fix: add nn.Flatten() after the pooling."
            if shape == (2, features, 1, 1) else
            "a vector at every position: the pooling is missing. Fix: keep model.avgpool."
            if shape[:2] == (2, features) or len(shape) == 2 and shape[1] % features == 0 else
            f"not (2, {features}). Fix: keep every layer up to the pooling, drop only model.fc."))
        require(torch.allclose(output, expected, rtol=1e-4, atol=1e-5), f"For a {name} the "
                f"features have other values. Fix: reuse the model given; remove only its head.")
    return (f"Well done: frozen, in eval mode, and exactly the features each ResNet's head reads "
            f"({sizes} numbers per image).")


def expected_rates(lr: float, stages, decay: float) -> dict[str, float]:
    """{stage: learning rate}: the head ("fc") at ``lr``, then ``decay`` times less per stage."""
    order = sorted(stages, key=lambda name: int(name.removeprefix("layer")), reverse=True)
    return {"fc": lr} | {stage: lr * decay**depth for depth, stage in enumerate(order, start=1)}


@checker('quiz.answer("fine_tuning_setup", setup_fine_tuning)')
def check_fine_tuning_setup(setup, *, stages=("layer3", "layer4"), decay: float = 0.1,
                            num_classes: int = 2) -> str:
    """Lesson 06: ``stages`` and the head train, at ``expected_rates``; nothing else does."""
    wanted, named = {"fc", *stages}, " and ".join(sorted(stages)) + " and the head (fc)"
    for lr in (1e-3, 3e-4):  # the second one catches rates typed in as numbers
        torch.manual_seed(0)  # the same model every time; grading restores the learner's stream
        model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        optimizer = attempt(f"setup_fine_tuning(model, lr={lr:g})", "define setup_fine_tuning("
                            "model, lr) and run it on a model in a cell.", setup, model, lr)
        require(isinstance(optimizer, torch.optim.Optimizer), f"setup_fine_tuning returned "
                f"{type(optimizer).__name__}. Fix: return torch.optim.AdamW(param_groups(...)).")
        trains = {name: {p.requires_grad for p in stage.parameters()}
                  for name, stage in model.named_children()}  # in model order
        extra = [s for s, flags in trains.items() if True in flags and s not in wanted]
        require(not extra, f"{', '.join(extra)} still train, but only {named} should. Fix: "
                f"freeze_backbone(model), then unfreeze(model, {', '.join(map(repr, stages))}).")
        missing = [s for s in trains if s in wanted and True not in trains[s]]
        require(not missing, f"{', '.join(missing)} is frozen, but {named} should train. Fix: "
                             f"unfreeze(model, {', '.join(map(repr, missing))}) after freezing.")
        partial = [s for s in trains if s in wanted and False in trains[s]]
        require(not partial, f"Only part of {', '.join(partial)} trains. Fix: unfreeze whole "
                             f"stages, unfreeze(model, {', '.join(map(repr, partial))}).")
        rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        for stage, want in expected_rates(lr, stages, decay).items():
            params = [id(p) for p in model.get_submodule(stage).parameters()]
            require(all(p in rate_of for p in params), f"Parameters of {stage} are not in the "
                    f"optimizer, so they never change. Fix: build the optimizer after unfreezing.")
            found = sorted({rate_of[p] for p in params})
            require(all(math.isclose(rate, want, rel_tol=1e-6) for rate in found), f"With "
                    f"lr={lr:.1e}, {stage} learns at {', '.join(f'{r:.1e}' for r in found)}, not "
                    f"{want:.1e}: the head learns at lr and earlier stages move less than the head"
                    f" (lr * {decay:g} per stage). Fix: param_groups(model, lr, decay={decay:g}).")
    return (f"Well done: {count_parameters(model, trainable=True):,} parameters train, each stage "
            f"{decay:g} times slower than the one after it; everything earlier stays frozen.")


def reference_seed_gaps(runs, strategy: str, baseline: str) -> dict:
    """{seed: accuracy of strategy minus that of baseline, in points} for seeds both ran."""
    accuracy = {(run["strategy"], run["seed"]): run["accuracy"] for run in runs}
    return {seed: 100 * (accuracy[strategy, seed] - accuracy[baseline, seed])
            for name, seed in accuracy if name == strategy and (baseline, seed) in accuracy}


def _runs(*rows) -> list[dict]:  # (strategy, seed, accuracy): runs as lesson 07 records them
    return [{"strategy": strategy, "seed": seed, "accuracy": accuracy, "seconds": 1.5}
            for strategy, seed, accuracy in rows]


GAP_PROBES = [  # (what it tests, runs, strategy, baseline): each shows one usual mistake
    ("seeds in another order for each strategy", _runs(
        ("last stage", 3, 0.75), ("last stage", 1, 0.875), ("last stage", 2, 0.625),
        ("scratch", 1, 0.5), ("scratch", 2, 0.25), ("scratch", 3, 0.375), ("full", 1, 0.125)),
     "last stage", "scratch"),
    ("a seed only one strategy ran", _runs(
        ("scratch", 0, 0.5), ("feature extraction", 0, 0.875), ("feature extraction", 5, 0.75),
        ("scratch", 7, 0.25)), "feature extraction", "scratch"),
]


def _scaled(got: dict, expected: dict, scale: float) -> bool:
    """Whether ``got`` is ``expected`` times ``scale``, seed by seed."""
    try:
        return all(math.isclose(float(got[seed]), scale * gap, abs_tol=1e-9)
                   for seed, gap in expected.items())
    except (KeyError, TypeError, ValueError):
        return False


@checker('quiz.answer("seed_gaps", seed_gaps)')
def check_seed_gaps(seed_gaps) -> str:
    """Lesson 07: ``seed_gaps(runs, strategy, baseline)``, as ``reference_seed_gaps``."""
    for _, probe, strategy, baseline in GAP_PROBES:
        runs, expected = copy.deepcopy(probe), reference_seed_gaps(probe, strategy, baseline)
        got = attempt(f"seed_gaps(runs, {strategy!r}, {baseline!r})", "look a run up by its "
                      "strategy and seed together; skip seeds only one strategy ran.",
                      seed_gaps, runs, strategy, baseline)
        require(runs == probe, "seed_gaps changed the list of runs it was given. Fix: read the "
                               "runs without sorting, removing or editing them.")
        require(isinstance(got, dict), f"seed_gaps returned a {type(got).__name__}, not a "
                                       f"dictionary. Fix: return {{seed: gap}}, e.g. {expected}.")
        shown = f"For runs {[(r['strategy'], r['seed'], r['accuracy']) for r in probe]}"
        require(set(got) <= {run["seed"] for run in runs}, f"{shown} the keys {list(got)} are "
                f"not the runs' seeds. Fix: key the dictionary by run['seed'].")
        require(set(got) <= set(expected), f"{shown} seed(s) {set(got) - set(expected)} were run "
                f"by only one of the two strategies. Fix: keep only the seeds that both ran.")
        if _scaled(got, expected, 1):
            continue
        require(not _scaled(got, expected, 0.01), "Your gaps are fractions of one (0.25), not "
                "percentage points. Fix: multiply the difference of the two accuracies by 100.")
        require(not _scaled(got, expected, -1), "Your gaps have the wrong sign. Fix: accuracy of "
                                                "strategy minus accuracy of baseline.")
        raise Mistake(f"{shown} the gaps are {expected}, you returned {got}. Fix: pair the two "
                      f"runs of each seed by their 'seed' key, not by their position in the list.")
    return "Well done: a gap in points for every seed both strategies ran, in any order of runs."
