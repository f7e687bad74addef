"""Data the course ships or finds on the learner's machine, with no download.

- ``load_sentiment``: the course's own small sentiment dataset (``data/sentiment``), the
  offline and smoke-size stand-in for SST-2 in the BERT lessons.
- ``sample_photo``: public-domain and CC0 photographs that scikit-image installs with itself
  (a cat, a coffee cup, an astronaut, a rocket), loaded from that package, not copied here.
- ``hymenoptera_folders``: the ants-vs-bees photos of the labs (downloaded and verified by
  ``labkit.assets``), or in stand-in mode a procedural set in the same layout, said loudly.
- ``face_folders``: real photos in the same layout with no download, faces against other
  crops from scikit-image's ``lfw_subset``: the labs' offline task.

Procedural images for the transfer demonstration are in ``labkit.synthetic``.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labkit.config import course_data_dir, shipped_data_dir

__all__ = ["SENTIMENT_LABELS", "SentimentSplit", "load_sentiment", "SAMPLE_PHOTOS",
           "sample_photo", "HYMENOPTERA_COUNTS", "HYMENOPTERA_STANDIN_SHAPES",
           "hymenoptera_folders", "FACES_COUNTS", "face_folders"]

SENTIMENT_LABELS = ("negative", "positive")  # label ids 0 and 1, as in SST-2


@dataclass
class SentimentSplit:
    texts: list[str]
    labels: list[int]         # 0 negative, 1 positive
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_sentiment(split: str = "train") -> SentimentSplit:
    """One split ("train" or "test") of ``data/sentiment/sentiment.csv``, in file order."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: the course's sentiment data has 'train' and 'test'. "
                         "Fix: pass one of them.")
    path = shipped_data_dir() / "sentiment" / "sentiment.csv"
    texts, labels, ids = [], [], []
    with open(path, newline="", encoding="utf-8") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if row["label"] not in SENTIMENT_LABELS:
                raise ValueError(f"{path}, line {line}: label {row['label']!r} is not one of "
                                 f"{SENTIMENT_LABELS}. Fix: correct that row.")
            if row["split"] == split:
                texts.append(row["text"])
                labels.append(SENTIMENT_LABELS.index(row["label"]))
                ids.append(row["id"])
    return SentimentSplit(texts, labels, ids)


# name -> (scikit-image function, what it shows, licence as scikit-image documents it)
SAMPLE_PHOTOS = {
    "cat": ("chelsea", "Chelsea the cat", "CC0 (photographer Stefan van der Walt)"),
    "coffee": ("coffee", "a cup of coffee", "CC0 (photographer Rachel Michetti)"),
    "astronaut": ("astronaut", "astronaut Eileen Collins", "public domain (NASA)"),
    "rocket": ("rocket", "a Falcon 9 launch", "public domain (SpaceX)"),
}


def sample_photo(name: str):
    """A PIL RGB image of one of ``SAMPLE_PHOTOS``, straight from scikit-image's files."""
    import skimage.data
    from PIL import Image

    if name not in SAMPLE_PHOTOS:
        raise KeyError(f"No sample photo {name!r}. Fix: use one of {sorted(SAMPLE_PHOTOS)}.")
    pixels = getattr(skimage.data, SAMPLE_PHOTOS[name][0])()  # (H, W, 3) uint8
    return Image.fromarray(pixels).convert("RGB")


# Images per split and class in the real hymenoptera_data folder: 244 for training and 153 for
# validation, the sizes the PyTorch transfer-learning tutorial reports for it.
HYMENOPTERA_COUNTS = {"train": {"ants": 123, "bees": 121}, "val": {"ants": 70, "bees": 83}}
# The stand-in draws each class as one procedural shape (labkit.synthetic) on clutter.
HYMENOPTERA_STANDIN_SHAPES = {"ants": "arrow", "bees": "hexagon"}
_STANDIN_FORMAT = 1


def _standin_ready(root: Path) -> bool:
    stamp = root / "standin.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("format") == _STANDIN_FORMAT


def _publish(staging: Path, root: Path, ready) -> None:
    """Rename the finished folder ``staging`` to ``root`` (atomic: readers see no set or a
    complete one). ``ready(root)`` says whether a folder there is complete already."""
    if root.exists() and not ready(root):
        shutil.rmtree(root)  # an older format or an interrupted copy, never a complete set
    try:
        staging.rename(root)
    except OSError:
        if not ready(root):  # another process finished the same set first
            raise


def _write_standin_hymenoptera(root: Path, size: int, seed: int) -> None:
    from labkit.synthetic import write_image_folder

    staging = Path(tempfile.mkdtemp(prefix=".hymenoptera-standin-", dir=root.parent))
    try:
        for offset, (split, counts) in enumerate(HYMENOPTERA_COUNTS.items()):
            for index, (name, count) in enumerate(counts.items()):
                shape = HYMENOPTERA_STANDIN_SHAPES[name]
                made = write_image_folder(staging / "tmp", [shape], count, size=size,
                                          seed=seed + 10 * offset + index)
                (staging / split).mkdir(exist_ok=True)
                (made / shape).rename(staging / split / name)
        shutil.rmtree(staging / "tmp")
        (staging / "standin.json").write_text(json.dumps(
            {"format": _STANDIN_FORMAT, "size": size, "seed": seed,
             "shapes": HYMENOPTERA_STANDIN_SHAPES, "counts": HYMENOPTERA_COUNTS}))
        _publish(staging, root, _standin_ready)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hymenoptera_folders(*, standin: bool | None = None, offline: bool | None = None,
                        size: int = 128, seed: int = 0) -> dict[str, Path]:
    """``{"train": Path, "val": Path}``: ImageFolder roots, each with ``ants/`` and ``bees/``.

    Normally the real photos, fetched and checked by ``labkit.assets`` (or an error that says
    how to get them). In stand-in mode (``standin=True`` or ``LABKIT_STANDIN=1``), a
    procedural set with the same layout, class names and image counts, written once under
    ``$LABKIT_DATA/standin``: an arrow on clutter is an "ant", a hexagon a "bee". A banner
    says so, since accuracies on it say nothing about the photos.
    """
    from labkit.assets import dataset_path
    from labkit.assets.standin import display_banner, standin_mode

    if not standin_mode(standin):
        root = dataset_path("hymenoptera", offline=offline)
        return {split: root / split for split in HYMENOPTERA_COUNTS}
    root = course_data_dir() / "standin" / f"hymenoptera-{size}px-seed{seed}"
    if not _standin_ready(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        _write_standin_hymenoptera(root, size, seed)
    display_banner(
        "STAND-IN MODE: these are not the ants-vs-bees photos but procedural images in the "
        "same folders and numbers (an arrow on clutter is an 'ant', a hexagon a 'bee'), so "
        "the code path is real and the accuracies say nothing about the photos. To use the "
        "photos: python -m labkit assets fetch hymenoptera, then set LABKIT_STANDIN=0.")
    return {split: root / split for split in HYMENOPTERA_COUNTS}


# lfw_subset holds 100 face crops, then 100 crops of other parts of the same photos; the
# first 50 of each go to training, the last 50 to validation (lesson 01 holds out the same).
FACES_COUNTS = {"train": {"faces": 50, "non-faces": 50}, "val": {"faces": 50, "non-faces": 50}}
_FACES_FORMAT = 1


def _faces_ready(root: Path) -> bool:
    stamp = root / "faces.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("format") == _FACES_FORMAT


def face_folders() -> dict[str, Path]:
    """``{"train": Path, "val": Path}``: ImageFolder roots, each with ``faces/`` and ``non-faces/``.

    Real photos with no download: scikit-image's ``lfw_subset``, 200 grayscale crops of 25x25
    pixels from the Labeled Faces in the Wild photos (100 faces, 100 other crops), written once
    as PNG files under ``$LABKIT_DATA/faces``. ImageNet has no face class, so a pre-trained
    network has to learn this task from the labels. Lessons 05, 06, 07, 10 and 11 use it offline.
    """
    import numpy as np
    import skimage.data
    from PIL import Image

    root = course_data_dir() / "faces" / f"lfw_subset-v{_FACES_FORMAT}"
    if _faces_ready(root):
        return {split: root / split for split in FACES_COUNTS}
    root.parent.mkdir(parents=True, exist_ok=True)
    crops = skimage.data.lfw_subset()  # (200, 25, 25) floats in [0, 1]
    staging = Path(tempfile.mkdtemp(prefix=".faces-", dir=root.parent))
    try:
        for index, crop in enumerate(crops):
            name = "faces" if index < 100 else "non-faces"
            split = "train" if index % 100 < 50 else "val"
            folder = staging / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((crop * 255).round().astype(np.uint8)).save(folder / f"{index:03}.png")
        (staging / "faces.json").write_text(json.dumps(
            {"format": _FACES_FORMAT, "source": "skimage.data.lfw_subset", "counts": FACES_COUNTS}))
        _publish(staging, root, _faces_ready)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {split: root / split for split in FACES_COUNTS}
