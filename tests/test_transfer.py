"""labkit.transfer on real torchvision and transformers architectures with random weights.

Nothing is downloaded: every model is built with weights=None (or from a tiny config).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.googlenet import GoogLeNetOutputs
from torchvision.models.inception import InceptionOutputs
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, RobertaConfig,
                          RobertaForSequenceClassification)

from labkit.transfer import (ParameterTable, aux_loss, freeze_backbone, head_modules,
                             param_groups, parameter_table, replace_head, train_mode, unfreeze)

# name -> (builder keyword arguments, input side in pixels, expected head parameter prefixes)
ARCHITECTURES = {
    "vgg16": ({}, 32, ["classifier.6"]),
    "resnet18": ({}, 32, ["fc"]),
    "googlenet": ({"aux_logits": True, "init_weights": False}, 64,
                  ["fc", "aux1.fc2", "aux2.fc2"]),
    "inception_v3": ({"aux_logits": True, "init_weights": False}, 75, ["fc", "AuxLogits.fc"]),
    "mobilenet_v3_small": ({}, 32, ["classifier.3"]),
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    kwargs, _, _ = ARCHITECTURES[name]
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.fixture(scope="module")
def three_class_models():
    """Each architecture once, with a 3-class head and a frozen backbone (built on demand:
    vgg16 alone takes seconds). Tests only run forward passes on these, in eval mode or
    through train_mode, so the frozen running statistics do not change between tests."""
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache[name] = freeze_backbone(replace_head(build(name), 3))
        return cache[name]
    return get


def trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def batchnorms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bert(num_labels: int = 2) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, num_labels=num_labels)
    return BertForSequenceClassification(config)


# --- heads of the torchvision architectures ---------------------------------------------


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_only_the_heads_train_after_freeze_backbone(name, three_class_models):
    model = three_class_models(name)
    heads = ARCHITECTURES[name][2]
    assert list(head_modules(model)) == heads
    assert trainable_names(model) == {f"{h}.{p}" for h in heads for p in ("weight", "bias")}
    for head in head_modules(model).values():
        assert isinstance(head, nn.Linear) and head.out_features == 3


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_new_head_gives_one_logit_per_class(name, three_class_models):
    model = three_class_models(name).eval()
    side = ARCHITECTURES[name][1]
    with torch.no_grad():
        logits = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 3)


@pytest.mark.parametrize("name, side", [("googlenet", 64), ("inception_v3", 299)])
def test_aux_heads_have_the_new_classes_too(name, side, three_class_models):
    model = train_mode(three_class_models(name))  # aux heads only run in train mode
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, side, side))
    model.eval()
    aux = [t for t in outputs[1:] if t is not None]
    assert len(aux) == len(ARCHITECTURES[name][2]) - 1
    assert all(t.shape == (2, 3) for t in [outputs.logits, *aux])


def test_new_head_keeps_the_old_dtype():
    model = torchvision.models.resnet18(weights=None).to(torch.float64)
    replace_head(model, 4)
    assert model.fc.weight.dtype == torch.float64 and model.fc.out_features == 4
    assert model.fc.in_features == 512


def test_weights_transforms_crop_to_the_size_the_model_was_trained_on():
    # Building the preset downloads nothing; Inception v3 was trained on 299-pixel crops.
    assert torchvision.models.Inception_V3_Weights.IMAGENET1K_V1.transforms().crop_size == [299]
    assert torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms().crop_size == [224]


# --- a transformers sequence classifier -------------------------------------------------


def test_bert_head_is_replaced_and_config_follows():
    model = replace_head(bert(), 5)
    assert model.config.num_labels == 5 and model.num_labels == 5
    input_ids = torch.randint(0, 100, (3, 7))
    with torch.no_grad():
        logits = model.eval()(input_ids=input_ids).logits
    assert logits.shape == (3, 5)

    freeze_backbone(model)
    assert trainable_names(model) == {"classifier.weight", "classifier.bias"}
    # Fine-tuning the last encoder layer, by its dotted name.
    unfreeze(model, "bert.encoder.layer.1")
    assert {n for n in trainable_names(model) if not n.startswith("classifier")}
    assert all(n.startswith(("classifier.", "bert.encoder.layer.1.")) for n in trainable_names(model))


@pytest.mark.parametrize("model_class, config, head", [
    (RobertaForSequenceClassification, RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37), "classifier.out_proj"),
    (DistilBertForSequenceClassification, DistilBertConfig(
        vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=37), "classifier"),
], ids=["roberta", "distilbert"])
def test_other_sequence_classifier_heads_are_found(model_class, config, head):
    model = freeze_backbone(replace_head(model_class(config), 4))
    assert list(head_modules(model)) == [head]
    assert trainable_names(model) == {f"{head}.weight", f"{head}.bias"}
    with torch.no_grad():
        logits = model.eval()(input_ids=torch.randint(1, 100, (2, 5))).logits
    assert logits.shape == (2, 4) and model.config.num_labels == 4


# --- counting parameters ------------------------------------------------------------------


def test_parameter_count_of_a_frozen_resnet18_with_two_classes():
    model = freeze_backbone(replace_head(torchvision.models.resnet18(weights=None), 2))
    table = parameter_table(model)
    assert table.trainable == 512 * 2 + 2 == 1026  # the number the lesson states
    assert table.total == sum(p.numel() for p in model.parameters())
    assert sum(row[1] for row in table.rows) == table.total
    assert sum(row[2] for row in table.rows) == table.trainable
    assert ("fc", 1026, 1026) in table.rows
    assert "relu" not in [row[0] for row in table.rows]  # no row for parameter-free children

    text = str(table)
    last = text.splitlines()[-1].split()
    assert last[0] == "total" and last[1:] == [f"{table.total:,}", "1,026"]


def test_parameter_table_counts_shared_and_root_parameters_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.embed = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight  # weight tying, as in language models

    table = parameter_table(Tied())
    assert table.rows == [("(root)", 1, 1), ("embed", 40, 40)]
    assert isinstance(table, ParameterTable) and table.total == 41


# --- BatchNorm and train_mode -------------------------------------------------------------


def test_frozen_batchnorm_keeps_its_running_statistics():
    model = freeze_backbone(replace_head(torchvision.models.resnet18(weights=None), 2))
    train_mode(model)
    assert model.training and model.fc.training
    assert all(not bn.training for bn in batchnorms(model))

    before = [bn.running_mean.clone() for bn in batchnorms(model)]
    model(torch.randn(4, 3, 32, 32) * 5 + 3)  # data far from the statistics
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, batchnorms(model)))

    unfreeze(model, "layer4")
    train_mode(model)
    assert all(bn.training for bn in batchnorms(model.layer4))
    assert not any(bn.training for bn in batchnorms(model.layer1))


# --- unfreeze -----------------------------------------------------------------------------


def test_unfreeze_stages_and_everything():
    model = freeze_backbone(replace_head(torchvision.models.resnet18(weights=None), 2))
    unfreeze(model, "layer4", "layer3.1.conv2")
    assert trainable_names(model) == (
        {n for n, _ in model.named_parameters() if n.startswith(("layer4.", "fc."))}
        | {"layer3.1.conv2.weight"})

    unfreeze(model)
    assert trainable_names(model) == {n for n, _ in model.named_parameters()}


def test_unfreeze_an_unknown_stage_lists_the_real_ones():
    model = freeze_backbone(replace_head(torchvision.models.resnet18(weights=None), 2))
    with pytest.raises(ValueError, match="layer5") as error:
        unfreeze(model, "layer4", "layer5")
    message = str(error.value)
    assert "Fix:" in message
    assert all(name in message for name, _ in model.named_children())
    assert trainable_names(model) == {"fc.weight", "fc.bias"}  # layer4 not unfrozen either

    with pytest.raises(ValueError, match=r"no stage named \['layer4'\].*Fix: pass each name"):
        unfreeze(model, ["layer4"])


# --- param_groups -------------------------------------------------------------------------


def test_param_groups_give_earlier_stages_smaller_lr():
    model = freeze_backbone(replace_head(torchvision.models.resnet18(weights=None), 2))
    unfreeze(model, "layer4")
    groups = param_groups(model, 1e-3, decay=0.1)
    assert [g["name"] for g in groups] == ["layer4", "fc"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])

    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))  # each parameter once
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}

    optimizer = torch.optim.AdamW(groups)
    fc_before = model.fc.weight.detach().clone()
    conv1_before = model.conv1.weight.detach().clone()
    logits = train_mode(model)(torch.randn(2, 3, 32, 32))
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    optimizer.step()
    assert not torch.equal(fc_before, model.fc.weight)
    assert torch.equal(conv1_before, model.conv1.weight)


def test_param_groups_decay_through_every_unfrozen_stage():
    model = replace_head(torchvision.models.resnet18(weights=None), 2)
    groups = param_groups(model, 1.0, decay=0.5)  # nothing frozen
    lrs = {g["name"]: g["lr"] for g in groups}
    assert [g["name"] for g in groups] == ["conv1", "bn1", "layer1", "layer2", "layer3",
                                           "layer4", "fc"]
    assert lrs["fc"] == 1.0 and lrs["layer4"] == 0.5 and lrs["conv1"] == 0.5 ** 6


def test_param_groups_give_aux_heads_the_head_lr(three_class_models):
    groups = param_groups(three_class_models("googlenet"), 1e-3)
    assert {g["name"]: g["lr"] for g in groups} == {"aux1": 1e-3, "aux2": 1e-3, "fc": 1e-3}


@pytest.mark.parametrize("lr, decay", [(0.0, 0.1), (-1e-3, 0.1), (1e-3, 0.0), (1e-3, 1.5)])
def test_param_groups_reject_bad_lr_and_decay(lr, decay):
    model = replace_head(torchvision.models.resnet18(weights=None), 2)
    with pytest.raises(ValueError, match="Fix:"):
        param_groups(model, lr, decay=decay)


# --- aux_loss -----------------------------------------------------------------------------


def test_aux_loss_adds_the_weighted_aux_loss(three_class_models):
    model = train_mode(three_class_models("inception_v3"))
    targets = torch.tensor([0, 2])
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 299, 299))
    model.eval()
    assert isinstance(outputs, InceptionOutputs)
    loss_fn = nn.CrossEntropyLoss()
    loss, logits = aux_loss(outputs, targets, loss_fn)
    expected = loss_fn(outputs.logits, targets) + 0.4 * loss_fn(outputs.aux_logits, targets)
    assert torch.allclose(loss, expected)
    assert logits is outputs.logits


def test_aux_loss_of_googlenet_and_plain_outputs():
    loss_fn = nn.CrossEntropyLoss()
    targets = torch.tensor([1, 0])
    logits, aux2, aux1 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    outputs = GoogLeNetOutputs(logits, aux2, aux1)
    loss, main = aux_loss(outputs, targets, loss_fn, aux_weight=0.3)
    expected = loss_fn(logits, targets) + 0.3 * (loss_fn(aux2, targets) + loss_fn(aux1, targets))
    assert torch.allclose(loss, expected) and main is logits

    loss, main = aux_loss(logits, targets, loss_fn)
    assert torch.equal(loss, loss_fn(logits, targets)) and main is logits

    with torch.no_grad():
        hf_outputs = bert(3).eval()(input_ids=torch.randint(0, 100, (2, 5)))
    loss, main = aux_loss(hf_outputs, targets, loss_fn)
    assert main is hf_outputs.logits and torch.equal(loss, loss_fn(main, targets))


# --- errors -------------------------------------------------------------------------------


def test_unknown_model_raises_and_changes_nothing():
    model = nn.Sequential(nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for call in (lambda: replace_head(model, 3), lambda: freeze_backbone(model)):
        with pytest.raises(TypeError) as error:
            call()
        assert "Sequential" in str(error.value) and "ResNet" in str(error.value)
        assert "Fix:" in str(error.value)
    assert model[0].out_features == 2 and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("num_classes", [1, 0, 2.0, True])
def test_bad_num_classes_raises_and_changes_nothing(num_classes):
    model = torchvision.models.resnet18(weights=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="Fix:"):
        replace_head(model, num_classes)
    assert model.fc.out_features == 1000
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
