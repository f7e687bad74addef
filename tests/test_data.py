"""The data the course ships or makes: the sentiment set, the sample photos, the procedural
shapes, and data/README.md listing every shipped file."""

import csv
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from labkit.data import SAMPLE_PHOTOS, load_sentiment, sample_photo
from labkit.synthetic import (SHAPES, SOURCE_CLASSES, TARGET_CLASSES, make_shapes,
                              write_image_folder)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def test_sentiment_set_is_balanced_with_the_documented_split():
    train, test = load_sentiment("train"), load_sentiment("test")
    assert (len(train), len(test)) == (320, 80)
    assert Counter(train.labels) == {0: 160, 1: 160} and Counter(test.labels) == {0: 40, 1: 40}
    assert not set(train.texts) & set(test.texts)
    assert not set(train.ids) & set(test.ids)
    readme = (DATA / "sentiment" / "README.md").read_text()
    for number in ("400", "320", "80"):
        assert number in readme


def test_sentiment_split_follows_every_fifth_row_per_label():
    with open(DATA / "sentiment" / "sentiment.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for label in ("positive", "negative"):
        mine = [row for row in rows if row["label"] == label]
        assert [row["split"] for row in mine] == [
            "test" if (i + 1) % 5 == 0 else "train" for i in range(len(mine))]


def test_sentiment_bad_split_name_is_explained():
    with pytest.raises(ValueError, match="'train' and 'test'"):
        load_sentiment("validation")


@pytest.mark.parametrize("name", sorted(SAMPLE_PHOTOS))
def test_sample_photos_load_from_scikit_image(name):
    photo = sample_photo(name)
    assert photo.mode == "RGB" and min(photo.size) >= 300


def test_shapes_are_deterministic_balanced_and_in_range():
    images, labels = make_shapes(SOURCE_CLASSES, 6, size=24, seed=3)
    again, _ = make_shapes(SOURCE_CLASSES, 6, size=24, seed=3)
    other, _ = make_shapes(SOURCE_CLASSES, 6, size=24, seed=4)
    assert images.shape == (30, 3, 24, 24) and images.dtype == torch.float32
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert 0 <= images.min() and images.max() <= 1
    assert Counter(labels.tolist()) == {k: 6 for k in range(5)}
    assert not set(SOURCE_CLASSES) & set(TARGET_CLASSES)
    with pytest.raises(KeyError, match="circle"):
        make_shapes(["circle"], 1)


def test_shapes_are_learnable():
    # A small CNN learns the source task well above chance (0.2) in a few seconds: the
    # images carry the shape, not just noise. (Lesson 01 measures the transfer itself.)
    torch.manual_seed(0)
    train = torch.utils.data.TensorDataset(*make_shapes(SOURCE_CLASSES, 400, seed=0))
    x_val, y_val = make_shapes(SOURCE_CLASSES, 40, seed=1)

    def block(inputs, outputs):
        return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU()]

    model = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                          *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 5))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True)
    accuracies = []
    for _ in range(15):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracies.append((model(x_val).argmax(1) == y_val).float().mean().item())
    assert sum(accuracies[-3:]) / 3 > 0.45, accuracies


def test_image_folder_reads_back_with_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder

    root = write_image_folder(tmp_path / "photos", ["hexagon", "arrow"], 3, size=40)
    folder = ImageFolder(root)
    assert folder.classes == ["arrow", "hexagon"] and len(folder) == 6
    assert folder[0][0].size == (40, 40)


def test_data_readme_lists_every_shipped_file_and_asset():
    readme = (DATA / "README.md").read_text()
    shipped = [p.relative_to(DATA).as_posix() for p in DATA.rglob("*")
               if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts]
    for name in shipped:
        assert f"`{name}`" in readme, f"data/README.md does not list {name}"
    from labkit.assets import REGISTRY

    for name in REGISTRY:
        assert f"`{name}`" in readme, f"data/README.md does not describe the asset {name}"
    for photo in SAMPLE_PHOTOS:
        assert f"`{photo}`" in readme
    assert re.search(r"procedural|labkit\.synthetic", readme)
    assert set(SHAPES) >= set(SOURCE_CLASSES + TARGET_CLASSES)


def test_data_readme_sizes_and_checksums_match_the_registry():
    from labkit.assets import REGISTRY, Dataset
    from labkit.assets.registry import describe_size

    readme = (DATA / "README.md").read_text()
    for asset in REGISTRY.values():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{asset.name}`"))
        if isinstance(asset, Dataset):
            assert f"{asset.size:,} bytes" in row and asset.sha256[:8] in row
        elif hasattr(asset, "revision"):
            assert asset.revision[:8] in row and describe_size(asset.size) in row
        elif hasattr(asset, "package"):  # installed by pip: the pin and the file's whole sha256
            assert f"`{asset.requirement}`" in row and asset.sha256 in row
            assert describe_size(asset.size) in row
            assert all(digest in row for digest in asset.unpacked_sha256.values())
        else:
            assert asset.weights.split(".")[1] in row and describe_size(asset.size) in row


def test_hymenoptera_standin_has_the_real_layout_and_counts(tmp_path, monkeypatch, capsys):
    from torchvision.datasets import ImageFolder

    from labkit.data import HYMENOPTERA_COUNTS, hymenoptera_folders
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    folders = hymenoptera_folders(standin=True, size=48)
    assert "STAND-IN MODE" in capsys.readouterr().out
    assert sum(HYMENOPTERA_COUNTS["train"].values()) == 244
    assert sum(HYMENOPTERA_COUNTS["val"].values()) == 153
    for split, counts in HYMENOPTERA_COUNTS.items():
        data = ImageFolder(folders[split])
        assert data.classes == ["ants", "bees"]
        assert [data.targets.count(i) for i in range(2)] == list(counts.values())
        assert data[0][0].size == (48, 48)
    first = (folders["train"] / "ants").stat().st_mtime_ns
    assert hymenoptera_folders(standin=True, size=48) == folders  # made once, then reused
    assert (folders["train"] / "ants").stat().st_mtime_ns == first


def test_hymenoptera_without_standin_needs_the_real_photos(tmp_path, monkeypatch):
    from labkit.assets import AssetMissing
    from labkit.data import hymenoptera_folders
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    with pytest.raises(AssetMissing, match="assets fetch hymenoptera"):
        hymenoptera_folders(standin=False, offline=True)


def test_hymenoptera_standin_written_by_two_processes_at_once(tmp_path):
    # Two notebooks (the labs) may make the set at the same moment under pytest-xdist.
    import subprocess
    import sys
    code = ("from labkit.data import hymenoptera_folders as f; from torchvision.datasets import "
            "ImageFolder; print(len(ImageFolder(f(standin=True, size=32)['train'])))")
    env = {**os.environ, "LABKIT_DATA": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in results]
    assert [out.strip().splitlines()[-1] for out, _ in results] == ["244", "244"]
    assert [p.name for p in (tmp_path / "standin").iterdir()] == ["hymenoptera-32px-seed0"]
