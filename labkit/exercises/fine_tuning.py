"""Checkers for lessons 06 (fine-tuning) and 07 (fine-tuning strategies).

Lesson 06: set up a ResNet for fine-tuning its last stages with discriminative learning rates.

The learner hands in a function ``setup_fine_tuning(model, lr)`` that changes a ResNet (its
head already replaced for the task) in place and returns an optimizer in which

- the head and the stages named in the bank (``stages``, e.g. layer3 and layer4) train, and
  nothing else does;
- the head learns at ``lr`` and each stage before it ``decay`` times slower than the stage
  after it (layer4 at lr * decay, layer3 at lr * decay ** 2);
- every trainable parameter is in the optimizer, once.

The checker builds its own fresh ResNet-18 (random weights, nothing downloaded) for two
learning rates, so numbers typed in by hand are caught, and never touches the learner's model.

Lesson 07: ``seed_gaps(runs, strategy, baseline)`` returns ``{seed: gap}``, the accuracy of
``strategy`` minus that of ``baseline`` in percentage points for every seed both ran. The
checker calls it on probe lists of runs of its own (seeds in another order, a seed only one
strategy ran) and says which usual mistake a wrong answer shows.
"""

from __future__ import annotations

import math
from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_fine_tuning_setup", "expected_rates", "check_seed_gaps",
           "reference_seed_gaps", "GAP_PROBES"]

HEAD = "fc"
PROBE_LRS = (1e-3, 3e-4)  # the second one catches rates typed in as numbers


def expected_rates(lr: float, stages, decay: float) -> dict[str, float]:
    """{stage: learning rate}: the head at ``lr``, then ``decay`` times less per stage back."""
    order = sorted(stages, key=lambda name: int(name.removeprefix("layer")), reverse=True)
    rates = {HEAD: lr}
    for depth, stage in enumerate(order, start=1):
        rates[stage] = lr * decay**depth
    return rates


def _stage(name: str) -> str:
    """Top-level child of a parameter name: "layer4.1.conv2.weight" -> "layer4"."""
    return name.split(".")[0]


def _fresh_resnet(num_classes: int):
    import torch
    import torchvision

    torch.manual_seed(0)  # the same model every time; grading restores the learner's stream
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


def _call(setup, model, lr):
    """(optimizer, None) or (None, CheckResult saying what went wrong)."""
    import torch

    try:
        optimizer = setup(model, lr)
    except TypeError as error:
        return None, CheckResult(False, f"Calling setup_fine_tuning(model, lr={lr:g}) failed: "
                                        f"{error}. Fix: define setup_fine_tuning(model, lr) with "
                                        f"exactly these two arguments.")
    except Exception as error:  # noqa: BLE001  (any error in the learner's code)
        return None, CheckResult(False, f"setup_fine_tuning(model, lr={lr:g}) raised "
                                        f"{type(error).__name__}: {error}. Fix: run it on a "
                                        f"model in a cell and correct the line that fails.")
    if not isinstance(optimizer, torch.optim.Optimizer):
        return None, CheckResult(False, (
            f"setup_fine_tuning returned {type(optimizer).__name__}, not an optimizer. Fix: "
            f"end with return torch.optim.AdamW(param_groups(model, lr)) (or any torch.optim "
            f"optimizer built from parameter groups)."))
    return optimizer, None


def _trainable_problem(model, stages) -> str | None:
    trainable = {_stage(n) for n, p in model.named_parameters() if p.requires_grad}
    wanted = {HEAD, *stages}
    extra = sorted(trainable - wanted, key=list(dict(model.named_children())).index)
    missing = sorted(wanted - trainable, key=list(dict(model.named_children())).index)
    named = " and ".join(sorted(stages)) + f" and the head ({HEAD})"
    if extra:
        return (f"{', '.join(extra)} still train(s), but only {named} should. Fix: "
                f"freeze_backbone(model) first (it freezes everything but the head), then "
                f"unfreeze(model, {', '.join(repr(s) for s in sorted(stages))}).")
    if missing:
        return (f"{', '.join(missing)} is frozen, but {named} should train. Fix: "
                f"unfreeze(model, {', '.join(repr(s) for s in missing)}) after freezing.")
    partial = sorted({_stage(n) for n, p in model.named_parameters()
                      if _stage(n) in wanted and not p.requires_grad})
    if partial:
        return (f"Only part of {', '.join(partial)} trains. Fix: unfreeze whole stages, "
                f"unfreeze(model, {', '.join(repr(s) for s in partial)}).")
    return None


def _rate_problem(model, optimizer, lr: float, stages, decay: float) -> str | None:
    # id(parameter) -> learning rate of its group (torch.optim refuses a parameter in two groups)
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    expected = expected_rates(lr, stages, decay)
    for stage, want in expected.items():
        params = [p for n, p in model.named_parameters() if _stage(n) == stage]
        absent = [p for p in params if id(p) not in rate_of]
        if absent:
            return (f"{len(absent)} trainable parameter tensors of {stage} are not in the "
                    f"optimizer, so they would never change. Fix: build the optimizer after "
                    f"unfreezing, from param_groups(model, lr).")
        found = {rate_of[id(p)] for p in params}
        if all(math.isclose(rate, want, rel_tol=1e-6) for rate in found):
            continue
        got = ", ".join(f"{rate:.1e}" for rate in sorted(found))
        if stage == HEAD:
            fix = f"the head learns at lr itself, {lr:.1e}"
        else:
            depth = round(math.log(want / lr) / math.log(decay))
            fix = (f"{stage} is {depth} stage(s) before the head, so it learns at "
                   f"lr * {decay:g}" + (f" ** {depth}" if depth > 1 else "") + f" = {want:.1e}"
                   f"{'; earlier stages should move less than the head' if found == {lr} else ''}."
                   f" Compute the rates from lr, or use param_groups(model, lr, decay={decay:g})")
        return f"With lr={lr:.1e}, {stage} learns at {got}. Fix: {fix}."
    return None


@register_checker("fine_tuning_setup")
def check_fine_tuning_setup(setup: Any, *, stages=("layer3", "layer4"), decay: float = 0.1,
                            num_classes: int = 2) -> CheckResult:
    """A function (model, lr) -> optimizer that unfreezes ``stages`` and the head of a
    ResNet and gives them discriminative learning rates."""
    from torch import nn

    if isinstance(setup, nn.Module):
        return CheckResult(False, "You handed in a model. Fix: hand in the function itself, "
                                  "quiz.answer('fine_tuning_setup', setup_fine_tuning), so the "
                                  "checker can run it on models of its own.")
    if not callable(setup):
        return CheckResult(False, f"Expected a function, got a {type(setup).__name__}. Fix: "
                                  f"pass setup_fine_tuning, the function you wrote.")
    stages = tuple(stages)
    for lr in PROBE_LRS:
        model = _fresh_resnet(num_classes)
        optimizer, problem = _call(setup, model, lr)
        if problem:
            return problem
        message = _trainable_problem(model, stages)
        if message is None:
            message = _rate_problem(model, optimizer, lr, stages, decay)
        if message:
            return CheckResult(False, message)
    rates = expected_rates(PROBE_LRS[0], stages, decay)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    listing = ", ".join(f"{stage} {rate:.0e}" for stage, rate in reversed(rates.items()))
    return CheckResult(True, (
        f"Well done: {trainable:,} parameters train ({', '.join(sorted(stages))} and the "
        f"head), with rates {listing} for lr={PROBE_LRS[0]:g}; everything earlier stays "
        f"frozen."))


# --- lesson 07 (fine-tuning strategies): the gap between two strategies, seed by seed ----------

GAPS_HAND_IN = 'quiz.answer("seed_gaps", seed_gaps)'


def reference_seed_gaps(runs, strategy: str, baseline: str) -> dict:
    """{seed: accuracy of strategy minus that of baseline, in points} for seeds both ran."""
    accuracy = {(run["strategy"], run["seed"]): run["accuracy"] for run in runs}
    return {seed: 100 * (accuracy[strategy, seed] - accuracy[baseline, seed])
            for name, seed in accuracy if name == strategy and (baseline, seed) in accuracy}


def _run(strategy: str, seed: int, accuracy: float) -> dict:
    return {"strategy": strategy, "seed": seed, "accuracy": accuracy, "seconds": 1.5,
            "trainable": 1026}


# (what the probe tests, runs, strategy, baseline): each catches one usual mistake
GAP_PROBES = [
    ("runs in seed order", [_run("scratch", 0, 0.5), _run("full", 0, 0.75),
                            _run("scratch", 1, 0.625), _run("full", 1, 0.875)],
     "full", "scratch"),
    ("seeds in another order for each strategy",
     [_run("last stage", 3, 0.75), _run("last stage", 1, 0.875), _run("last stage", 2, 0.625),
      _run("scratch", 1, 0.5), _run("scratch", 2, 0.25), _run("scratch", 3, 0.375),
      _run("full", 1, 0.125)], "last stage", "scratch"),
    ("a seed only one strategy ran",
     [_run("scratch", 0, 0.5), _run("feature extraction", 0, 0.875),
      _run("feature extraction", 5, 0.75), _run("scratch", 7, 0.25)],
     "feature extraction", "scratch"),
]


def _runs_text(runs) -> str:
    return "[" + ", ".join(f"{r['strategy']} seed {r['seed']}: {r['accuracy']}"
                           for r in runs) + "]"


def _gaps_problem(got, expected: dict, runs) -> str | None:
    """What is wrong with ``got`` against ``expected`` for these ``runs``, or None."""
    runs_text = _runs_text(runs)
    if not isinstance(got, dict):
        return (f"seed_gaps returned a {type(got).__name__}, not a dictionary. Fix: return "
                f"{{seed: gap}}, e.g. {expected}.")
    if set(got) != set(expected):
        extra = sorted(set(got) - set(expected), key=repr)
        if set(got) - {run["seed"] for run in runs}:
            why = "its keys are not the runs' seeds. Fix: key the dictionary by run['seed']."
        elif extra:
            why = (f"seed(s) {extra} were run by only one of the two strategies, so there is no "
                   f"gap to give. Fix: keep only the seeds that both strategies ran.")
        else:
            why = "some seeds that both strategies ran are missing. Fix: give a gap for each."
        return f"For runs {runs_text} you returned the seeds {sorted(got, key=repr)}: {why}"

    def close(a, b):
        return all(math.isclose(float(a[s]), float(b[s]), rel_tol=1e-9, abs_tol=1e-9)
                   for s in b)

    try:
        if close(got, expected):
            return None
        if close(got, {s: g / 100 for s, g in expected.items()}):
            return ("Your gaps are fractions of one (0.25), not percentage points. Fix: "
                    "multiply the difference of the two accuracies by 100.")
        if close(got, {s: -g for s, g in expected.items()}):
            return ("Your gaps have the wrong sign: you subtracted the strategy from the "
                    "baseline. Fix: accuracy of strategy minus accuracy of baseline.")
    except (TypeError, ValueError):
        return f"Your gaps are not numbers: {got}. Fix: return a number of points per seed."
    return (f"For runs {runs_text} the gaps are {expected}, you returned {got}. Fix: pair the "
            f"two runs of each seed by their 'seed' key, not by their position in the list.")


@register_checker("seed_gaps")
def check_seed_gaps(seed_gaps: Any) -> CheckResult:
    """A function (runs, strategy, baseline) -> {seed: gap in points}, for seeds both ran."""
    import copy

    if not callable(seed_gaps):
        return CheckResult(False, f"Expected a function, got a {type(seed_gaps).__name__}. "
                                  f"Fix: hand in the function itself, {GAPS_HAND_IN}.")
    for _, probe, strategy, baseline in GAP_PROBES:
        runs = copy.deepcopy(probe)  # the learner's function may change its list
        try:
            got = seed_gaps(runs, strategy, baseline)
        except Exception as error:  # noqa: BLE001  (any error in the learner's code)
            return CheckResult(False, (
                f"seed_gaps(runs, {strategy!r}, {baseline!r}) raised {type(error).__name__}: "
                f"{error}, for runs {_runs_text(probe)}. Fix: look a run up by its strategy "
                f"and its seed together, and skip seeds that only one of the two strategies "
                f"ran."))
        if runs != probe:
            return CheckResult(False, "seed_gaps changed the list of runs it was given. Fix: "
                                      "read the runs without sorting, removing or editing them.")
        problem = _gaps_problem(got, reference_seed_gaps(probe, strategy, baseline), probe)
        if problem:
            return CheckResult(False, problem)
    return CheckResult(True, "Well done: the gaps in points for every seed both strategies ran, "
                             "whatever the order of the runs.")
