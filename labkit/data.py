"""Data the course ships or finds on the learner's machine, with no download: the sentiment set
(lessons 08, 09), sample photos (lesson 00 on), and the image folders of labs 05 on."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from labkit.config import course_data_dir, shipped_data_dir

SENTIMENT_LABELS = ("negative", "positive")  # label ids 0 and 1, as in SST-2


@dataclass
class SentimentSplit:
    texts: list[str]
    labels: list[int]         # 0 negative, 1 positive
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_sentiment(split: str = "train") -> SentimentSplit:
    """A split ("train" or "test") of ``data/sentiment/sentiment.csv``, SST-2's stand-in (08-09)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: the course's sentiment data has 'train' and 'test'. "
                         "Fix: pass one of them.")
    with open(shipped_data_dir() / "sentiment" / "sentiment.csv", newline="",
              encoding="utf-8") as file:
        rows = [row for row in csv.DictReader(file) if row["split"] == split]
    return SentimentSplit([row["text"] for row in rows],
                          [SENTIMENT_LABELS.index(row["label"]) for row in rows],
                          [row["id"] for row in rows])


# name -> the scikit-image function; what each shows and its licence are in data/README.md
SAMPLE_PHOTOS = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket"}


def sample_photo(name: str):
    """A PIL RGB image of one of ``SAMPLE_PHOTOS``, straight from scikit-image's files."""
    import skimage.data
    from PIL import Image

    if name not in SAMPLE_PHOTOS:
        raise KeyError(f"No sample photo {name!r}. Fix: use one of {sorted(SAMPLE_PHOTOS)}.")
    return Image.fromarray(getattr(skimage.data, SAMPLE_PHOTOS[name])()).convert("RGB")


# Images per split and class in the real hymenoptera_data folder (244 to train on, 153 to
# validate: the sizes the PyTorch transfer-learning tutorial reports for it).
HYMENOPTERA_COUNTS = {"train": {"ants": 123, "bees": 121}, "val": {"ants": 70, "bees": 83}}
# The stand-in draws each class as one procedural shape (labkit.synthetic) on clutter.
HYMENOPTERA_STANDIN_SHAPES = {"ants": "arrow", "bees": "hexagon"}


def hymenoptera_folders(*, standin: bool | None = None, offline: bool | None = None,
                        size: int = 128, seed: int = 0) -> dict[str, Path]:
    """``{"train": Path, "val": Path}``, each with ``ants/`` and ``bees/`` (lesson 05): the real
    photos, or in stand-in mode procedural images in the same layout and numbers (an arrow on
    clutter is an "ant", a hexagon a "bee"), written once under ``$LABKIT_DATA/standin``."""
    from labkit.assets import dataset_path, show_banner, standin_mode, store
    from labkit.synthetic import write_image_folder

    def write(staging: Path) -> None:
        for offset, (split, counts) in enumerate(HYMENOPTERA_COUNTS.items()):
            for index, (name, count) in enumerate(counts.items()):
                shape = HYMENOPTERA_STANDIN_SHAPES[name]
                write_image_folder(staging / split, [shape], count, size=size,
                                   seed=seed + 10 * offset + index)
                (staging / split / shape).rename(staging / split / name)
        (staging / "standin.json").write_text(json.dumps(HYMENOPTERA_STANDIN_SHAPES))  # stamp

    if not standin_mode(standin):
        root = dataset_path("hymenoptera", offline=offline)
    else:
        root = store.publish(course_data_dir() / "standin" / f"hymenoptera-{size}px-seed{seed}",
                             write, "standin.json")
        show_banner("STAND-IN MODE: not the ants-vs-bees photos but procedural images in the "
                    "same folders and numbers (an arrow on clutter is an 'ant', a hexagon a "
                    "'bee'): the accuracies say nothing about the photos. To use them: python -m "
                    "labkit assets fetch hymenoptera, then set LABKIT_STANDIN=0.")
    return {split: root / split for split in HYMENOPTERA_COUNTS}


# lfw_subset holds 100 face crops, then 100 crops of other parts of the same photos; the
# first 50 of each go to training, the last 50 to validation (lesson 01 holds out the same).
FACES_COUNTS = {"train": {"faces": 50, "non-faces": 50}, "val": {"faces": 50, "non-faces": 50}}


def face_folders() -> dict[str, Path]:
    """``{"train": Path, "val": Path}``, each with ``faces/`` and ``non-faces/`` (lesson 05):
    scikit-image's ``lfw_subset`` (200 grayscale 25x25 crops of Labeled Faces in the Wild photos)
    as PNG files under ``$LABKIT_DATA/faces``; ImageNet has no face class to lean on."""
    from labkit.assets import store

    def write(staging: Path) -> None:
        import numpy as np
        import skimage.data
        from PIL import Image

        for index, crop in enumerate(skimage.data.lfw_subset()):  # (200, 25, 25) in [0, 1]
            folder = (staging / ("train" if index % 100 < 50 else "val")
                      / ("faces" if index < 100 else "non-faces"))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((crop * 255).round().astype(np.uint8)).save(folder / f"{index:03}.png")
        (staging / "faces.json").write_text(json.dumps(FACES_COUNTS))  # the stamp of a whole set

    root = store.publish(course_data_dir() / "faces" / "lfw_subset-v1", write, "faces.json")
    return {split: root / split for split in FACES_COUNTS}
