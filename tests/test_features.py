import math
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision import transforms

from labkit.features import FeatureLoader, extract_features, feature_cache_key

CLASSES = ("cat", "dog")
IMAGES_PER_CLASS = 4


def write_image(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def image_root(tmp_path):
    """A real ImageFolder on disk: 2 classes x 4 random 32x32 PNG images."""
    root = tmp_path / "images"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(IMAGES_PER_CLASS):
            write_image(root / name / f"{i}.png", seed=10 * c + i)
    return root


def make_transform(size=32):
    return transforms.Compose([transforms.Resize(size), transforms.ToTensor()])


def make_dataset(root, size=32):
    return torchvision.datasets.ImageFolder(root, transform=make_transform(size))


def make_backbone(seed=0):
    """A tiny conv backbone: (B, 3, H, W) -> (B, 4, 2, 2), flattened to 16 features."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


def count_forward_calls(backbone):
    calls = []
    backbone.register_forward_hook(lambda module, inputs, output: calls.append(1))
    return calls


# --- extract_features -----------------------------------------------------------------------


def test_features_equal_running_a_resnet_by_hand_in_eval_mode(image_root, tmp_path, capsys):
    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None)
    backbone.fc = nn.Identity()
    backbone.train()
    loader = DataLoader(make_dataset(image_root), batch_size=3)

    features, labels = extract_features(backbone, loader, "cpu", cache_dir=tmp_path / "cache")

    assert features.shape == (8, 512) and features.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert labels.tolist() == [0] * 4 + [1] * 4
    assert backbone.training, "the backbone's training mode is restored"
    backbone.eval()
    with torch.no_grad():
        expected = torch.cat([backbone(inputs) for inputs, _ in loader])
    torch.testing.assert_close(features, expected)
    assert "extracted 8 features of size 512" in capsys.readouterr().out


def test_second_call_loads_from_cache_without_running_the_backbone(image_root, tmp_path, capsys):
    backbone = make_backbone()
    calls = count_forward_calls(backbone)
    loader = DataLoader(make_dataset(image_root), batch_size=4)

    first = extract_features(backbone, loader, "cpu", cache_dir=tmp_path)
    assert len(calls) == 2 and "extracted" in capsys.readouterr().out
    second = extract_features(backbone, loader, "cpu", cache_dir=tmp_path)
    out = capsys.readouterr().out

    assert len(calls) == 2, "the backbone did not run again"
    assert "loaded from the cache" in out and str(tmp_path) in out
    torch.testing.assert_close(second, first)

    extract_features(backbone, loader, "cpu", cache_dir=tmp_path, refresh=True)
    assert len(calls) == 4 and "extracted" in capsys.readouterr().out


def test_extracted_features_can_train_a_head(image_root, tmp_path):
    """Features made under inference_mode must still be usable as inputs to autograd."""
    loader = DataLoader(make_dataset(image_root), batch_size=4)
    for _ in range(2):  # extracted, then loaded from the cache
        features, labels = extract_features(make_backbone(), loader, "cpu", cache_dir=tmp_path)
        head = nn.Linear(features.shape[1], 2)
        nn.functional.cross_entropy(head(features), labels).backward()
        assert head.weight.grad is not None


def test_default_cache_folder_is_under_labkit_data(image_root, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "data"))
    backbone = make_backbone()
    extract_features(backbone, DataLoader(make_dataset(image_root)), "cpu")
    saved = list((tmp_path / "data" / "features").iterdir())
    key = feature_cache_key(backbone, make_dataset(image_root))
    assert [p.name for p in saved] == [f"Sequential-{key[:16]}.pt"]


def test_cache_dir_false_writes_nothing(image_root, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "data"))
    before = sorted(tmp_path.rglob("*"))
    features, _ = extract_features(make_backbone(), DataLoader(make_dataset(image_root)), "cpu",
                                   cache_dir=False)
    assert features.shape == (8, 16)
    assert sorted(tmp_path.rglob("*")) == before


def test_write_is_atomic_and_leaves_only_the_final_file(image_root, tmp_path):
    folder = tmp_path / "cache"
    extract_features(make_backbone(), DataLoader(make_dataset(image_root)), "cpu", cache_dir=folder)
    names = [p.name for p in folder.iterdir()]
    assert len(names) == 1 and names[0].endswith(".pt") and names[0].startswith("Sequential-")


def test_corrupt_cache_is_moved_aside_and_features_recomputed(image_root, tmp_path):
    backbone = make_backbone()
    loader = DataLoader(make_dataset(image_root), batch_size=4)
    expected, labels = extract_features(backbone, loader, "cpu", cache_dir=tmp_path / "cache")
    (path,) = (tmp_path / "cache").iterdir()
    path.write_bytes(b"this is not a torch file")

    with pytest.warns(UserWarning, match=r"corrupt or unreadable.*Fix:"):
        features, again = extract_features(backbone, loader, "cpu", cache_dir=tmp_path / "cache")

    torch.testing.assert_close(features, expected)
    assert again.tolist() == labels.tolist()
    assert path.with_name(path.name + ".corrupt").read_bytes() == b"this is not a torch file"
    assert path.exists(), "fresh features were saved under the real name"


class PlainDataset(Dataset):
    """A dataset labkit cannot look inside: no .samples, not a TensorDataset."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        torch.manual_seed(i)
        return torch.rand(3, 16, 16), i % 2


def test_dataset_that_cannot_be_fingerprinted_is_refused_unless_caching_is_off(tmp_path):
    backbone = make_backbone()
    loader = DataLoader(PlainDataset(), batch_size=4)
    with pytest.raises(ValueError, match=r"PlainDataset cannot be fingerprinted.*Fix: pass "
                                         r"cache_dir=False"):
        extract_features(backbone, loader, "cpu", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
    features, labels = extract_features(backbone, loader, "cpu", cache_dir=False)
    assert features.shape == (6, 16) and labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_batches_that_are_not_pairs_are_refused(tmp_path):
    images = torch.rand(4, 3, 16, 16)
    with pytest.raises(TypeError, match=r"a Tensor; .*Fix:"):
        extract_features(make_backbone(), [images, images], "cpu", cache_dir=False)
    with pytest.raises(TypeError, match=r"a list of length 1; .*Fix:"):
        extract_features(make_backbone(), DataLoader(TensorDataset(images)), "cpu",
                         cache_dir=tmp_path)


def test_empty_loader_is_refused(tmp_path):
    empty = TensorDataset(torch.rand(0, 3, 16, 16), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-empty list"):  # torch.cat's own message
        extract_features(make_backbone(), DataLoader(empty), "cpu", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


# --- the cache key --------------------------------------------------------------------------


def test_key_is_stable_for_an_identical_dataset_and_model(image_root, tmp_path):
    key = feature_cache_key(make_backbone(), make_dataset(image_root))
    assert key == feature_cache_key(make_backbone(), make_dataset(image_root))
    assert len(key) == 64 and int(key, 16) >= 0
    copy = shutil.copytree(image_root, tmp_path / "elsewhere")
    moved = feature_cache_key(make_backbone(), make_dataset(copy))
    assert moved == key, "file paths are hashed relative to the dataset's root"


def test_key_changes_when_an_image_file_changes(image_root):
    dataset = make_dataset(image_root)
    before = feature_cache_key(make_backbone(), dataset)
    write_image(image_root / "dog" / "2.png", seed=999)
    assert feature_cache_key(make_backbone(), dataset) != before


def test_key_changes_when_the_transform_changes(image_root):
    backbone = make_backbone()
    assert feature_cache_key(backbone, make_dataset(image_root, size=32)) != feature_cache_key(
        backbone, make_dataset(image_root, size=28))


def test_key_changes_when_the_weights_change(image_root):
    backbone, dataset = make_backbone(), make_dataset(image_root)
    before = feature_cache_key(backbone, dataset)
    with torch.no_grad():
        backbone[0].weight[0, 0, 0, 0] += 1e-3
    assert feature_cache_key(backbone, dataset) != before


def test_key_follows_subset_indices(image_root):
    backbone, dataset = make_backbone(), make_dataset(image_root)
    keys = {
        feature_cache_key(backbone, dataset),
        feature_cache_key(backbone, Subset(dataset, [0, 1, 2])),
        feature_cache_key(backbone, Subset(dataset, [0, 1, 3])),
        feature_cache_key(backbone, Subset(dataset, [2, 1, 0])),
    }
    assert len(keys) == 4
    with pytest.raises(ValueError, match="cannot be fingerprinted"):  # one Subset level only
        feature_cache_key(backbone, Subset(Subset(dataset, [7, 6, 5, 4]), [1, 3]))


def test_key_follows_tensor_dataset_contents():
    backbone = make_backbone()
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    key = feature_cache_key(backbone, TensorDataset(images, labels))
    assert key == feature_cache_key(backbone, TensorDataset(images.clone(), labels.clone()))
    assert key != feature_cache_key(backbone, TensorDataset(images, labels.flip(0)))


# --- FeatureLoader --------------------------------------------------------------------------


def epoch_order(loader):
    return torch.cat([targets for _, targets in loader]).tolist()


def test_feature_loader_covers_every_sample_once_in_order():
    features, labels = torch.arange(10.0).repeat(3, 1).T, torch.arange(10)  # (10, 3), (10,)
    loader = FeatureLoader(features, labels, batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3 == math.ceil(10 / 4)
    assert [len(targets) for _, targets in batches] == [4, 4, 2]
    assert epoch_order(loader) == list(range(10))
    for inputs, targets in batches:
        assert inputs[:, 0].long().tolist() == targets.tolist(), "rows stay with their labels"
    assert len(loader.dataset) == 10 and loader.batch_size == 4


def test_feature_loader_shuffles_each_epoch_repeatably():
    features, labels = torch.randn(50, 3), torch.arange(50)
    loader = FeatureLoader(features, labels, batch_size=8, shuffle=True)
    torch.manual_seed(0)
    first, second = epoch_order(loader), epoch_order(loader)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second, "a new order each epoch"
    torch.manual_seed(0)
    assert epoch_order(loader) == first, "torch.manual_seed repeats the order"

    seeded = FeatureLoader(features, labels, batch_size=8, shuffle=True,
                           generator=torch.Generator().manual_seed(1))
    again = FeatureLoader(features, labels, batch_size=8, shuffle=True,
                          generator=torch.Generator().manual_seed(1))
    assert epoch_order(seeded) == epoch_order(again)


def test_feature_loader_refuses_features_and_labels_of_different_lengths():
    with pytest.raises(AssertionError, match="Size mismatch"):  # TensorDataset's own check
        FeatureLoader(torch.randn(10, 3), torch.zeros(9), batch_size=4)


def test_linear_head_on_feature_loader_reaches_full_training_accuracy():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (64,))
    features = torch.randn(64, 8) + 3.0 * (2 * labels[:, None] - 1)  # two well-separated clusters
    train_loader = FeatureLoader(features, labels, batch_size=16, shuffle=True)
    head = nn.Linear(8, 2)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    for _ in range(5):
        for inputs, targets in train_loader:
            loss = nn.functional.cross_entropy(head(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        preds = head(features).argmax(dim=1)
    assert (preds == labels).float().mean().item() == 1.0
