"""Data the course ships or finds on the learner's machine, with no download.

- ``load_sentiment``: the course's own small sentiment dataset (``data/sentiment``), the
  offline and smoke-size stand-in for SST-2 in the BERT lessons.
- ``sample_photo``: public-domain and CC0 photographs that scikit-image installs with itself
  (a cat, a coffee cup, an astronaut, a rocket), loaded from that package, not copied here.

Procedural images for the transfer demonstration are in ``labkit.synthetic``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from labkit.config import shipped_data_dir

__all__ = ["SENTIMENT_LABELS", "SentimentSplit", "load_sentiment", "SAMPLE_PHOTOS",
           "sample_photo"]

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
