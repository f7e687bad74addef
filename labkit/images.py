"""Learners' own photos (lesson 05): torchvision's ``ImageFolder`` with ``loader=load_image``
(every image 8-bit RGB) and ``is_valid_file`` (each file checked once; ``skipped`` says why)."""

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torchvision
from PIL import Image, ImageFile

IMAGE_EXTENSIONS = torchvision.datasets.folder.IMG_EXTENSIONS  # what torchvision reads
# Images, but not ones the dataset reads: the ants-vs-bees set itself has an imageNotFound.gif.
OTHER_IMAGES = {".gif", ".heic", ".heif", ".avif", ".jfif", ".svg", ".dng", ".cr2", ".nef", ".arw"}
MODE_NAMES = {"L": "grayscale", "1": "black-and-white", "P": "palette", "I": "32-bit", "F": "float",
              "I;16": "16-bit", "RGBA": "transparent", "LA": "transparent", "PA": "transparent"}


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: 16-bit and float images scaled (Pillow's ``convert`` clips them),
    transparent pixels put on white (``convert`` drops the alpha and shows what lies under it)."""
    if image.mode.startswith(("I", "F")):  # integers of 16 or 32 bits, floats: (H, W)
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and pixels.max(initial=0) <= 1.0:
            pixels = pixels * 255.0           # a float image in [0, 1]
        elif image.mode != "F" and (image.mode != "I" or pixels.max(initial=0) > 255):
            pixels = pixels / 257.0           # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    if {"A", "a"} & set(image.getbands()) or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` as 8-bit RGB; an unreadable file is an error naming the fix."""
    try:
        with Image.open(path) as image:
            return to_rgb(image)  # decodes every byte, so a damaged file fails here
    except FileNotFoundError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... per format
        raise ValueError(f"{path} cannot be read as an image ({type(exc).__name__}: {exc}). "
                         "Fix: open it in an image viewer; if it shows, save it again as JPEG "
                         "or PNG, otherwise delete it or copy it again.") from exc


class ImageFolder(torchvision.datasets.ImageFolder):
    """torchvision's ImageFolder for real-world photos: ``skipped`` lists ``(path, reason)``
    for each file left out, ``modes`` counts the image modes, ``summary()`` says both."""

    def __init__(self, root: str | os.PathLike, transform=None, target_transform=None, *,
                 min_size: int | tuple[int, int] | None = None) -> None:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            raise ValueError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True, so truncated images "
                             "would load as half-grey pictures. Fix: set it back to False.")
        self.min_size = (min_size, min_size) if isinstance(min_size, int) else min_size  # (h, w)
        self.skipped: list[tuple[Path, str]] = []
        self.modes: Counter = Counter()
        self._judged: dict[Path, str | None] = {}  # each folder and file met: why left out
        self._listed: dict[Path, Path] = {}        # real path -> the path it is listed under
        super().__init__(root, transform, target_transform, loader=load_image,
                         is_valid_file=self._is_valid, allow_empty=True)
        for index, name in enumerate(self.classes):
            if index not in self.targets:
                why = [f"{p.name} ({r})" for p, r in self.skipped
                       if p.relative_to(self.root).parts[0] == name][:5]
                raise ValueError(
                    f"The class folder {Path(self.root) / name} has no usable images"
                    f"{' (skipped: ' + '; '.join(why) + ')' if why else ''}. Fix: put images of "
                    f"'{name}' in it, or delete the folder (the model then has one class fewer).")
        problems = [f"  {p.relative_to(self.root)}: {r}" for p, r in self.skipped
                    if not r.startswith("hidden")]  # hidden files are only listed in skipped
        if problems:
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            warnings.warn(f"labkit: skipped {len(problems)} file(s) under {self.root}, using "
                          f"{len(self.samples)} images:\n" + "\n".join(problems[:20]) + more
                          + "\nFix: replace or delete these files (dataset.skipped lists them "
                          "all).", stacklevel=2)
        if converted := sum(n for mode, n in self.modes.items() if mode != "RGB"):
            print(f"labkit: {converted} of {len(self.samples)} images under {self.root} are not "
                  "8-bit RGB and are converted as they are read (dataset.summary() says which).")

    def find_classes(self, directory) -> tuple[list[str], dict[str, int]]:
        """torchvision's hook for the classes: no hidden ones, and at least two."""
        root = Path(directory)
        if not root.is_dir():
            raise FileNotFoundError(f"No folder {root}. Fix: check the path; an image folder "
                                    f"holds one subfolder per class, e.g. {root}/cats/1.jpg.")
        folders = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.skipped += [(root / name, "hidden folder") for name in folders if name[0] == "."]
        classes = [name for name in folders if name[0] != "."]
        if len(classes) < 2:
            loose = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in root.iterdir())
            found = f" but {loose} images directly in it" if loose else ""
            problem = (f"one class folder ({classes[0]}/), and a classifier needs at least two"
                       if classes else f"no class subfolders{found}")
            raise ValueError(f"{root} has {problem}. Fix: put the images in one subfolder per "
                             f"class, e.g. {root}/cats/1.jpg and {root}/dogs/2.jpg.")
        return classes, {name: index for index, name in enumerate(classes)}

    def _is_valid(self, file: str) -> bool:
        """torchvision's hook for each file: it and each folder on the way are judged once."""
        file = Path(file)
        parts = file.relative_to(self.root).parts
        home = path = Path(self.root) / parts[0]
        for part in parts[1:]:
            path = path / part
            if path not in self._judged:
                self._judged[path] = why = self._problem(path, home, path == file)
                self.skipped += [(path, why)] if why else []
            if self._judged[path]:
                return False
        return True

    def _problem(self, path: Path, home: Path, is_file: bool) -> str | None:
        """Why ``path`` (a file, or a folder on the way to one) is left out, or None."""
        if path.name.startswith("."):
            return "hidden file" if is_file else "hidden folder"
        if problem := self._link_problem(path, home):
            return problem
        if not is_file:
            return None
        suffix = path.suffix.lower()
        if suffix in OTHER_IMAGES:
            return f"a {suffix} image, a type this dataset does not read; convert it to JPEG"
        if suffix not in IMAGE_EXTENSIONS:
            return f"not an image file ({suffix or 'no extension'})"
        try:
            with Image.open(path) as image:
                (width, height), mode = image.size, image.mode
                image.draft("RGB", (1, 1))  # JPEG: decode at 1/8 scale, still every byte
                image.load()                # a truncated file fails here
        except Image.UnidentifiedImageError:
            return "not an image Pillow can read (perhaps another kind of file renamed)"
        except Exception as exc:
            return f"corrupt or truncated ({type(exc).__name__}: {exc})"
        if self.min_size and (height < self.min_size[0] or width < self.min_size[1]):
            return (f"{width}x{height} pixels, smaller than min_size "
                    f"{self.min_size[1]}x{self.min_size[0]}")
        self.modes[mode] += 1
        return None

    def _link_problem(self, path: Path, home: Path) -> str | None:
        """Why a link is left out (broken, a loop, into another class), or a repeat."""
        real, home_real, top = (Path(os.path.realpath(p)) for p in (path, home, home.parent))
        if path.is_symlink():
            if not real.exists():
                return "a link to something that does not exist"
            if Path(os.path.realpath(path.parent)).is_relative_to(real):
                return ("a link to a folder that holds it, which would list the same images "
                        "again and again (a loop)")
            if real.is_relative_to(home_real):
                return (f"a link to {real.relative_to(home_real).as_posix()} in the same class "
                        "folder, whose images are listed from there")
            if real.is_relative_to(top):
                return (f"a link to {real.relative_to(top).as_posix()}, outside the class "
                        f"folder {home.name}/: an image counts once, in the class folder it is in")
        if real in self._listed:
            kind = "folder" if real.is_dir() else "file"
            return (f"the same {kind} as {self._listed[real].relative_to(self.root).as_posix()}"
                    ", which is listed")
        self._listed[real] = path
        return None

    def summary(self) -> str:
        """Which files were skipped and why, and which images are converted to RGB."""
        lines = [f"{len(self.samples)} images in {len(self.classes)} classes under {self.root}"]
        converted = {m: n for m, n in sorted(self.modes.items()) if m != "RGB"}
        if converted:
            lines.append("converted to RGB as they are read: " + ", ".join(
                f"{n} {MODE_NAMES.get(m, m)} ({m})" for m, n in converted.items()))
        lines += [f"skipped {p.relative_to(self.root)}: {r}" for p, r in self.skipped]
        return "\n".join(lines)

