"""Issue 22 (3): symbolic links in a learner's image folder (real links, tiny real images).

Each real image is listed once, under the class folder it is really in. A link that loops back
(``ln -s .. ants/loop``), leads into another class, or reaches what is already listed is
skipped and listed with the reason, like the other skipped files; a link to photos kept
elsewhere on the disk is followed.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labkit.images import ImageFolder

pytestmark = pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights")


def photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def ants_and_bees(root: Path) -> Path:
    for seed, name in enumerate(["ants/a1.png", "ants/a2.png", "bees/b1.png", "bees/b2.png"]):
        photo(root / name, seed)
    return root


def listed(dataset: ImageFolder) -> list[tuple[str, str]]:
    return sorted((Path(p).relative_to(dataset.root).as_posix(), dataset.classes[label])
                  for p, label in dataset.samples)


def reasons(dataset: ImageFolder) -> dict[str, str]:
    return {Path(p).relative_to(dataset.root).as_posix(): r for p, r in dataset.skipped}


TRUE = [("ants/a1.png", "ants"), ("ants/a2.png", "ants"), ("bees/b1.png", "bees"),
        ("bees/b2.png", "bees")]


@pytest.mark.parametrize("link, target", [
    ("ants/loop", ".."),      # the issue's `ln -s .. ants/loop`: 164 samples from 4 files
    ("bees/self", "."),
    ("ants/deep/up", "../.."),
])
def test_a_link_back_up_the_folder_is_a_loop_skipped_and_said(tmp_path, link, target):
    root = ants_and_bees(tmp_path / "photos")
    (root / link).parent.mkdir(exist_ok=True)
    os.symlink(target, root / link)
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\).*using 4 images") as caught:
        dataset = ImageFolder(root)
    assert listed(dataset) == TRUE
    assert "(a loop)" in reasons(dataset)[link]
    assert f"{link}: a link to a folder that holds it" in str(caught[0].message)


def test_a_link_into_another_class_is_skipped_not_labelled_with_the_wrong_class(tmp_path):
    root = ants_and_bees(tmp_path / "photos")
    os.symlink("../bees", root / "ants" / "more")             # a folder of bees, in ants/
    os.symlink("../bees/b1.png", root / "ants" / "b1-copy.png")  # one bee photo, in ants/
    with pytest.warns(UserWarning, match=r"skipped 2 file"):
        dataset = ImageFolder(root)
    assert listed(dataset) == TRUE
    why = reasons(dataset)
    assert why["ants/more"].startswith("a link to bees, outside the class folder ants/")
    assert why["ants/b1-copy.png"].startswith("a link to bees/b1.png, outside")


def test_links_to_photos_elsewhere_are_followed_once_and_broken_links_are_listed(tmp_path):
    root = ants_and_bees(tmp_path / "photos")
    photo(tmp_path / "elsewhere" / "ants" / "e1.png", 10)
    photo(tmp_path / "elsewhere" / "ants" / "sub" / "e2.png", 11)
    os.symlink(tmp_path / "elsewhere" / "ants", root / "ants" / "extra")      # followed
    os.symlink(tmp_path / "elsewhere" / "ants", root / "ants" / "extra-too")  # the same again
    os.symlink(tmp_path / "elsewhere" / "ants" / "sub", root / "ants" / "sub-too")
    os.symlink("a1.png", root / "ants" / "alias.png")      # within the class: listed from there
    os.symlink("missing.png", root / "bees" / "gone.png")  # a broken link
    with pytest.warns(UserWarning, match=r"skipped 4 file"):
        dataset = ImageFolder(root)
    # torchvision walks the folders in sorted order, so e2.png is met first as ants/extra/sub.
    assert listed(dataset) == sorted(TRUE + [("ants/extra/e1.png", "ants"),
                                             ("ants/extra/sub/e2.png", "ants")])
    why = reasons(dataset)
    assert why["ants/extra-too"] == "the same folder as ants/extra, which is listed"
    assert why["ants/sub-too"] == "the same folder as ants/extra/sub, which is listed"
    assert why["ants/alias.png"].startswith("a link to a1.png in the same class folder")
    assert why["bees/gone.png"] == "a link to something that does not exist"
    assert len(dataset) == 6 and all(image.size == (8, 8) for image, _ in dataset)
