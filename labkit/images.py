"""Reading learners' own images: whatever a camera, phone or editor made, or a clear reason why not.

    from labkit.images import ImageFolder, load_image
    train_set = ImageFolder("my_photos/train", transform=weights.transforms(),
                            min_size=weights.meta["min_size"])
    photo = load_image("holiday.tif")  # a PIL RGB image, whatever the file's mode

``ImageFolder`` is torchvision's (one subfolder per class; ``classes``, ``targets`` and
``samples`` as there) with every file checked once, when the dataset is made:

- corrupt or truncated files, files Pillow cannot read (a text file named .jpg) and other
  files (notes.txt) are skipped, and a warning lists each with the reason;
- hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints/``) are left out, as the
  operating system hides them from you too;
- links are followed, and each real file is listed once, in the class folder it is really in:
  a link that loops back (``ln -s .. ants/loop``), leads into another class folder, reaches a
  file or folder already listed, or leads nowhere is skipped and listed with the reason;
- images smaller than ``min_size`` (the weights' ``meta["min_size"]``) are skipped and listed;
- grayscale, palette, CMYK, transparent and 16-bit images are converted to 8-bit RGB as they
  are read (``to_rgb``), so every sample has three channels;
- a folder with no class subfolders, with only one, or with a class left empty is an error
  that says how to lay the folder out.

A file that breaks after the check raises an error naming it, never a silent substitute.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torchvision
from PIL import Image, ImageFile

__all__ = ["ImageFolder", "load_image", "to_rgb", "IMAGE_EXTENSIONS"]

# torchvision's own list, so that a folder torchvision reads gives the same samples here.
IMAGE_EXTENSIONS = torchvision.datasets.folder.IMG_EXTENSIONS
# Images, but not ones the dataset reads: the ants-vs-bees set itself has an imageNotFound.gif.
OTHER_IMAGES = {".gif", ".heic", ".heif", ".avif", ".jfif", ".svg", ".dng", ".cr2", ".nef", ".arw"}
SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
TRANSPARENT = {"RGBA", "RGBa", "LA", "La", "PA"}
# What the conversion note calls each mode.
MODE_NAMES = {"L": "grayscale", "1": "black-and-white", "P": "palette", "CMYK": "CMYK",
              "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV", "I": "16/32-bit", "F": "float"}
MODE_NAMES |= {mode: "16-bit" for mode in SIXTEEN_BIT}
MODE_NAMES |= {mode: "transparent" for mode in TRANSPARENT}
# (path, size in bytes, modification time) -> (problem or None, (width, height), mode):
# a folder opened again (every lesson cell that makes a dataset) is not decoded again.
_checked: dict[tuple[str, int, int], tuple[str | None, tuple[int, int] | None, str | None]] = {}
_told: set[tuple] = set()  # what was already said about a folder: said once, not per dataset


def _hidden(name: str) -> bool:
    return name.startswith(".")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB. 16-bit and float images are scaled (not clipped to white),
    transparent pixels are put on white (not on black), every other mode is converted."""
    if image.mode in SIXTEEN_BIT or image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)  # (H, W)
        top = pixels.max(initial=0)
        if image.mode == "F" and top <= 1.0:
            pixels = pixels * 255.0           # a float image in [0, 1]
        elif image.mode != "F" and (image.mode in SIXTEEN_BIT or top > 255):
            pixels = pixels / 257.0           # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    if image.mode in TRANSPARENT or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` as a PIL RGB image (see ``to_rgb``); a file that cannot be read
    is a ValueError naming it and the fix."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... per format
        raise ValueError(f"{path} cannot be read as an image ({type(exc).__name__}: {exc}). "
                         "Fix: open it in an image viewer; if it shows, save it again as JPEG "
                         "or PNG, otherwise delete it or copy it again.") from exc


def _check_file(path: Path) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """(problem or None, (width, height), mode): decodes the whole file once."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _checked:
        _checked[key] = _decode(path)
    return _checked[key]


def _decode(path: Path):
    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            image.draft("RGB", (1, 1))  # JPEG: decode at 1/8 scale, still reading every byte
            image.load()                # a truncated file fails here
        return None, size, mode
    except Image.UnidentifiedImageError:
        return "not an image Pillow can read (perhaps another kind of file renamed)", None, None
    except Exception as exc:
        return f"corrupt or truncated ({type(exc).__name__}: {exc})", None, None


def _min_size(min_size) -> tuple[int, int] | None:
    """None, or (height, width) from an int or a pair, as in weights.meta["min_size"]."""
    if min_size is None:
        return None
    height, width = (min_size, min_size) if isinstance(min_size, int) else min_size
    return int(height), int(width)


class ImageFolder(torchvision.datasets.ImageFolder):
    """torchvision's ImageFolder for folders of real-world photos; see the module docstring.

    ``skipped`` lists ``(path, reason)`` for every file left out (hidden files included);
    ``modes`` counts the image modes found; ``summary()`` says both in words.
    """

    def __init__(self, root: str | os.PathLike, transform=None, target_transform=None, *,
                 min_size: int | tuple[int, int] | None = None) -> None:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            raise ValueError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True, so truncated images "
                             "would load as half-grey pictures. Fix: set it back to False.")
        self.min_size = _min_size(min_size)
        self.skipped: list[tuple[Path, str]] = []
        self.modes: Counter = Counter()
        super().__init__(root, transform=transform, target_transform=target_transform,
                         loader=load_image)
        self._warn_and_note()

    def find_classes(self, directory) -> tuple[list[str], dict[str, int]]:
        root = Path(directory)
        if not root.is_dir():
            raise FileNotFoundError(f"No folder {root}. Fix: check the path; an image folder "
                                    f"holds one subfolder per class, e.g. {root}/cats/1.jpg.")
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not _hidden(e.name))
        layout = f"one subfolder per class, e.g. {root}/cats/1.jpg and {root}/dogs/2.jpg"
        if not classes:
            loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
            found = f" but {len(loose)} images directly in it" if loose else ""
            raise ValueError(f"{root} has no class subfolders{found}. Fix: put the images in "
                             f"{layout}.")
        if len(classes) == 1:
            raise ValueError(f"{root} has one class folder ({classes[0]}/), and a classifier "
                             f"needs at least two. Fix: add a folder for each other class, "
                             f"{layout}.")
        return classes, {name: index for index, name in enumerate(classes)}

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None,
                     allow_empty=False) -> list[tuple[str, int]]:
        samples = []
        for name, index in class_to_idx.items():
            found = [path for path in self._files(Path(directory) / name) if self._usable(path)]
            if not found:
                why = [f"{p.name} ({r})" for p, r in self.skipped if p.parent.name == name][:5]
                raise ValueError(
                    f"The class folder {Path(directory) / name} has no usable images"
                    f"{' (skipped: ' + '; '.join(why) + ')' if why else ''}. Fix: put images of "
                    f"'{name}' in it, or delete the folder (the model then has one class fewer).")
            samples += [(str(path), index) for path in found]
        return samples

    def _files(self, folder: Path) -> list[Path]:
        """Every file under a class folder, each real file once. Links are followed, except
        those ``_link_problem`` finds, which are skipped with the reason."""
        files, seen = [], {}  # seen: real path -> the path it is listed under
        for top, folders, names in os.walk(folder, followlinks=True):
            for name in sorted(folders):
                path = Path(top) / name
                reason = "hidden folder" if _hidden(name) else self._link_problem(
                    path, folder, seen)
                if reason:
                    folders.remove(name)  # os.walk does not go into it
                    self.skipped.append((path, reason))
            folders.sort()
            for name in sorted(names):
                path = Path(top) / name
                reason = None if _hidden(name) else self._link_problem(path, folder, seen)
                if reason:
                    self.skipped.append((path, reason))
                else:
                    files.append(path)
        return files

    @staticmethod
    def _link_problem(path: Path, folder: Path, seen: dict[str, Path]) -> str | None:
        """Why ``path`` (under the class folder ``folder``) is not listed, or None: a link that
        is broken, loops back, leads elsewhere in the image folder (into another class, whose
        images count there), or reaches what is already listed."""
        real, home, top = (os.path.realpath(p) for p in (path, folder, folder.parent))
        kind = "folder" if os.path.isdir(real) else "file"

        def inside(folder: str) -> bool:
            return real == folder or real.startswith(folder + os.sep)

        if path.is_symlink():
            if not os.path.exists(real):
                return "a link to something that does not exist"
            parent = os.path.realpath(path.parent)
            if parent == real or parent.startswith(real + os.sep):
                return ("a link to a folder that holds it, which would list the same images "
                        "again and again (a loop)")
            if inside(top) and not inside(home):
                return (f"a link to {Path(os.path.relpath(real, top)).as_posix()}, outside the "
                        f"class folder {folder.name}/: an image counts once, in the class folder "
                        "it is in")
            if inside(home):
                return (f"a link to {Path(os.path.relpath(real, home)).as_posix()} in the same "
                        "class folder, whose images are listed from there")
        if real in seen:
            return (f"the same {kind} as {seen[real].relative_to(folder.parent).as_posix()}, "
                    "which is listed")
        seen[real] = path
        return None

    def _usable(self, path: Path) -> bool:
        if _hidden(path.name):
            reason = "hidden file"
        elif path.suffix.lower() in OTHER_IMAGES:
            reason = f"a {path.suffix} image, a type this dataset does not read; convert it to JPEG"
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            reason = f"not an image file ({path.suffix or 'no extension'})"
        else:
            reason, size, mode = _check_file(path)
            if reason is None and self.min_size and (size[1] < self.min_size[0]
                                                     or size[0] < self.min_size[1]):
                reason = (f"{size[0]}x{size[1]} pixels, smaller than min_size "
                          f"{self.min_size[1]}x{self.min_size[0]}")
            if reason is None:
                self.modes[mode] += 1
                return True
        self.skipped.append((path, reason))
        return False

    def summary(self) -> str:
        """Which files were skipped and why, and which images are converted to RGB."""
        lines = [f"{len(self.samples)} images in {len(self.classes)} classes under {self.root}"]
        converted = {m: n for m, n in sorted(self.modes.items()) if m != "RGB"}
        if converted:
            lines.append("converted to RGB as they are read: " + ", ".join(
                f"{n} {MODE_NAMES.get(m, m)} ({m})" for m, n in converted.items()))
        lines += [f"skipped {Path(p).relative_to(self.root)}: {r}" for p, r in self.skipped]
        return "\n".join(lines)

    def _warn_and_note(self) -> None:
        problems = [(p, r) for p, r in self.skipped if not r.startswith("hidden")]
        converted = sum(n for m, n in self.modes.items() if m != "RGB")
        said = (str(self.root), tuple(problems), converted)
        if said in _told:  # the same folder again (another transform): said already
            return
        _told.add(said)
        if problems:
            listed = "\n".join(f"  {Path(p).relative_to(self.root)}: {r}" for p, r in problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            warnings.warn(f"labkit: skipped {len(problems)} file(s) under {self.root}, "
                          f"using {len(self.samples)} images:\n{listed}{more}\nFix: replace or "
                          "delete these files (dataset.skipped lists them all).", stacklevel=3)
        if converted:
            print(f"labkit: {converted} of {len(self.samples)} images under {self.root} are not "
                  "8-bit RGB and are converted as they are read (dataset.summary() says which).")
