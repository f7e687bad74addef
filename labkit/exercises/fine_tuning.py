"""Checkers for lessons 06 (fine-tuning) and 07 (fine-tuning strategies), on models and runs of
their own: ``setup_fine_tuning(model, lr)`` returns an optimizer with discriminative learning
rates (tried at two rates, so typed-in numbers show); ``seed_gaps(runs, strategy, baseline)``."""

import copy
import math

import torch
import torchvision

from labkit.exercises.checks import Mistake, attempt, checker, expect_callable, require
from labkit.vision import count_parameters

PROBE_LRS = (1e-3, 3e-4)  # the second one catches rates typed in as numbers


def expected_rates(lr: float, stages, decay: float) -> dict[str, float]:
    """{stage: learning rate}: the head ("fc") at ``lr``, then ``decay`` times less per stage."""
    order = sorted(stages, key=lambda name: int(name.removeprefix("layer")), reverse=True)
    return {"fc": lr} | {stage: lr * decay**depth for depth, stage in enumerate(order, start=1)}


def _check_trainable(model, stages) -> None:
    def stages_where(trains: bool) -> list[str]:  # "layer4.1.conv2.weight" -> "layer4"
        names = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad == trains}
        return [name for name, _ in model.named_children() if name in names]
    wanted, named = {"fc", *stages}, " and ".join(sorted(stages)) + " and the head (fc)"
    extra = [s for s in stages_where(True) if s not in wanted]
    require(not extra, f"{', '.join(extra)} still train, but only {named} should. Fix: "
            f"freeze_backbone(model), then unfreeze(model, {', '.join(map(repr, stages))}).")
    missing = [s for s, _ in model.named_children() if s in wanted - set(stages_where(True))]
    require(not missing, f"{', '.join(missing)} is frozen, but {named} should train. Fix: "
                         f"unfreeze(model, {', '.join(map(repr, missing))}) after freezing.")
    partial = [s for s in stages_where(False) if s in wanted]
    require(not partial, f"Only part of {', '.join(partial)} trains. Fix: unfreeze whole stages, "
                         f"unfreeze(model, {', '.join(map(repr, partial))}).")


def _check_rates(model, optimizer, lr: float, stages, decay: float) -> None:
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    for stage, want in expected_rates(lr, stages, decay).items():
        params = [id(p) for p in model.get_submodule(stage).parameters()]
        require(all(p in rate_of for p in params), f"Trainable parameters of {stage} are not in "
                f"the optimizer, so they never change. Fix: build the optimizer after unfreezing.")
        found = sorted({rate_of[p] for p in params})
        require(all(math.isclose(rate, want, rel_tol=1e-6) for rate in found), f"With "
                f"lr={lr:.1e}, {stage} learns at {', '.join(f'{r:.1e}' for r in found)}, not "
                f"{want:.1e}: the head learns at lr and each stage before it {decay:g} times "
                f"slower (lr * {decay:g} per stage), as earlier stages move less than the head. "
                f"Fix: param_groups(model, lr, decay={decay:g}), or compute the rates from lr.")


@checker
def check_fine_tuning_setup(setup, *, stages=("layer3", "layer4"), decay: float = 0.1,
                            num_classes: int = 2) -> str:
    """A function (model, lr) -> optimizer that unfreezes ``stages`` and the head of a ResNet
    and gives them discriminative learning rates."""
    expect_callable(setup, 'quiz.answer("fine_tuning_setup", setup_fine_tuning)')
    for lr in PROBE_LRS:
        torch.manual_seed(0)  # the same model every time; grading restores the learner's stream
        model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        optimizer = attempt(f"setup_fine_tuning(model, lr={lr:g})", "define setup_fine_tuning("
                            "model, lr) and run it on a model in a cell.", setup, model, lr)
        require(isinstance(optimizer, torch.optim.Optimizer), f"setup_fine_tuning returned "
                f"{type(optimizer).__name__}, not an optimizer. Fix: end with return "
                f"torch.optim.AdamW(param_groups(model, lr)).")
        _check_trainable(model, stages)
        _check_rates(model, optimizer, lr, stages, decay)
    rates = expected_rates(PROBE_LRS[0], stages, decay)
    return (f"Well done: {count_parameters(model, trainable=True):,} parameters train, with "
            f"rates {', '.join(f'{s} {r:.0e}' for s, r in reversed(rates.items()))} for "
            f"lr={PROBE_LRS[0]:g}; everything earlier stays frozen.")


def reference_seed_gaps(runs, strategy: str, baseline: str) -> dict:
    """{seed: accuracy of strategy minus that of baseline, in points} for seeds both ran."""
    accuracy = {(run["strategy"], run["seed"]): run["accuracy"] for run in runs}
    return {seed: 100 * (accuracy[strategy, seed] - accuracy[baseline, seed])
            for name, seed in accuracy if name == strategy and (baseline, seed) in accuracy}


def _runs(*rows) -> list[dict]:  # (strategy, seed, accuracy): runs as lesson 07 records them
    return [{"strategy": strategy, "seed": seed, "accuracy": accuracy, "seconds": 1.5}
            for strategy, seed, accuracy in rows]


GAP_PROBES = [  # (what it tests, runs, strategy, baseline): each shows one usual mistake
    ("runs in seed order", _runs(("scratch", 0, 0.5), ("full", 0, 0.75), ("scratch", 1, 0.625),
                                 ("full", 1, 0.875)), "full", "scratch"),
    ("seeds in another order for each strategy", _runs(
        ("last stage", 3, 0.75), ("last stage", 1, 0.875), ("last stage", 2, 0.625),
        ("scratch", 1, 0.5), ("scratch", 2, 0.25), ("scratch", 3, 0.375), ("full", 1, 0.125)),
     "last stage", "scratch"),
    ("a seed only one strategy ran", _runs(
        ("scratch", 0, 0.5), ("feature extraction", 0, 0.875), ("feature extraction", 5, 0.75),
        ("scratch", 7, 0.25)), "feature extraction", "scratch"),
]


def _check_gaps(got, runs, strategy: str, baseline: str) -> None:
    expected = reference_seed_gaps(runs, strategy, baseline)
    require(isinstance(got, dict), f"seed_gaps returned a {type(got).__name__}, not a "
                                   f"dictionary. Fix: return {{seed: gap}}, e.g. {expected}.")
    shown = "For runs [" + "; ".join(f"{r['strategy']} seed {r['seed']}: {r['accuracy']}"
                                     for r in runs) + "]"
    require(set(got) <= {run["seed"] for run in runs}, f"{shown} the keys {list(got)} are not "
            f"the runs' seeds. Fix: key the dictionary by run['seed'].")
    require(set(got) <= set(expected), f"{shown} seed(s) {set(got) - set(expected)} were run by "
            f"only one of the two strategies. Fix: keep only the seeds that both ran.")

    def scaled(scale: float) -> bool:  # got == expected * scale, seed by seed
        try:
            return all(math.isclose(float(got[s]), scale * g, abs_tol=1e-9)
                       for s, g in expected.items())
        except (KeyError, TypeError, ValueError):
            return False
    if scaled(1):
        return
    require(not scaled(0.01), "Your gaps are fractions of one (0.25), not percentage points. "
                              "Fix: multiply the difference of the two accuracies by 100.")
    require(not scaled(-1), "Your gaps have the wrong sign. Fix: accuracy of strategy minus "
                            "accuracy of baseline.")
    raise Mistake(f"{shown} the gaps are {expected}, you returned {got}. Fix: pair the two runs "
                  f"of each seed by their 'seed' key, not by their position in the list.")


@checker
def check_seed_gaps(seed_gaps) -> str:
    """A function (runs, strategy, baseline) -> {seed: gap in points}, for seeds both ran."""
    expect_callable(seed_gaps, 'quiz.answer("seed_gaps", seed_gaps)')
    for _, probe, strategy, baseline in GAP_PROBES:
        runs = copy.deepcopy(probe)  # the learner's function may change its list
        got = attempt(f"seed_gaps(runs, {strategy!r}, {baseline!r})", "look a run up by its "
                      "strategy and seed together; skip seeds only one strategy ran.",
                      seed_gaps, runs, strategy, baseline)
        require(runs == probe, "seed_gaps changed the list of runs it was given. Fix: read the "
                               "runs without sorting, removing or editing them.")
        _check_gaps(got, probe, strategy, baseline)
    return "Well done: a gap in points for every seed both strategies ran, in any order of runs."
