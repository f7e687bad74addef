"""Issue 10: bad inputs, interruptions and repeatability, each on files the tests make (CPU, seconds).

Learners' own photos (labkit.images), num_classes against the data, running out of GPU
memory, fit repeated with one seed, a process killed in the middle of a checkpoint write, and
a quiz bank that is not UTF-8. Text data is tested in test_text.py, safety in test_safety.py.
"""

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset
from torchvision.datasets import ImageFolder as TorchvisionImageFolder
from torchvision.transforms import v2

from labkit.checkpoint import load_checkpoint
from labkit.device import seed_everything
from labkit.features import feature_cache_key
from labkit.images import ImageFolder, load_image, to_rgb
from labkit.quiz.bank import BankError, load_bank
from labkit.train import fit

CPU = torch.device("cpu")
QUIET = {"progress": False, "plot": False}
TESTS = Path(__file__).resolve().parent


# --- learners' own photos -------------------------------------------------------------------

def photo(size=(48, 40), seed=0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def messy_folder(root: Path) -> Path:
    """cats/: one good JPEG and every kind of file that is not one; dogs/: every image mode."""
    cats, dogs = root / "cats", root / "dogs"
    for folder in (cats, dogs, root / ".ipynb_checkpoints", cats / ".ipynb_checkpoints"):
        folder.mkdir(parents=True)
    photo().save(cats / "good.jpg", quality=90)
    whole = (cats / "good.jpg").read_bytes()
    (cats / "cut.jpg").write_bytes(whole[:len(whole) // 2])        # a JPEG cut in half
    (cats / "letter.jpg").write_text("Dear Sir, this is not a photo")  # a text file named .jpg
    (cats / "notes.txt").write_text("which cat is which")
    (cats / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cats / "._good.jpg").write_bytes(b"\0\5\26\7")                 # macOS AppleDouble file
    photo().save(cats / ".ipynb_checkpoints" / "good-checkpoint.jpg")
    photo().convert("L").save(dogs / "gray.png")
    photo().convert("CMYK").save(dogs / "cmyk.tiff")                # a CMYK TIFF
    rgba = photo().convert("RGBA")
    rgba.putalpha(0)
    rgba.save(dogs / "clear.png")
    gray16 = np.full((40, 48), 32896, dtype=np.uint16)             # 32896 / 257 = 128
    Image.fromarray(gray16).save(dogs / "deep.png")                 # 16-bit grayscale
    photo().convert("P").save(dogs / "palette.png")
    photo().save(cats / "animated.gif")                             # an image, of a type not read
    return root


def test_corrupt_and_non_image_files_are_skipped_with_a_summary_of_which_and_why(tmp_path):
    root = messy_folder(tmp_path / "photos")
    with pytest.warns(UserWarning, match="skipped 4 file") as caught:
        dataset = ImageFolder(root, transform=v2.PILToTensor())
    message = str(caught[0].message)
    assert "cats/cut.jpg: corrupt or truncated" in message and "truncated" in message
    assert "cats/letter.jpg: not an image Pillow can read" in message
    assert "cats/notes.txt: not an image file (.txt)" in message and "Fix:" in message
    assert "cats/animated.gif: a .gif image, a type this dataset does not read; convert it" in message
    assert ".DS_Store" not in message  # hidden files are left out without a warning...
    reasons = {Path(path).name: reason for path, reason in dataset.skipped}
    assert reasons[".DS_Store"] == reasons["._good.jpg"] == "hidden file"  # ...but listed
    assert reasons[".ipynb_checkpoints"] == "hidden folder"
    assert dataset.classes == ["cats", "dogs"]  # .ipynb_checkpoints is not a class
    names = sorted(Path(path).name for path, _ in dataset.samples)
    assert names == ["clear.png", "cmyk.tiff", "deep.png", "good.jpg", "gray.png", "palette.png"]
    for image, label in dataset:
        assert image.shape == (3, 40, 48) and image.dtype == torch.uint8 and label in (0, 1)
    assert "cats/cut.jpg: corrupt or truncated" in dataset.summary()
    theirs = TorchvisionImageFolder(root, allow_empty=True,  # it takes .ipynb_checkpoints
                                    is_valid_file=lambda p: Path(p).name in names)  # for a class
    assert sorted(Path(p).name for p, _ in theirs.samples) == names  # the same good files


def test_a_folder_is_described_once_per_dataset_not_once_per_image(tmp_path, recwarn, capsys):
    root = messy_folder(tmp_path / "photos")
    dataset = ImageFolder(root)
    for index in range(len(dataset)):  # reading every image says nothing more
        dataset[index]
    assert len([w for w in recwarn.list if "skipped" in str(w.message)]) == 1
    assert capsys.readouterr().out.count("are converted as they are read") == 1
    ImageFolder(root, transform=v2.PILToTensor())  # a new dataset describes its files again
    assert len([w for w in recwarn.list if "skipped" in str(w.message)]) == 2


def test_grayscale_cmyk_rgba_palette_and_16_bit_images_become_rgb_with_the_right_pixels(tmp_path):
    root = messy_folder(tmp_path / "photos")
    with pytest.warns(UserWarning):
        dataset = ImageFolder(root)
    by_name = {Path(path).name: dataset[i][0] for i, (path, _) in enumerate(dataset.samples)}
    assert all(image.mode == "RGB" for image in by_name.values())
    assert np.asarray(by_name["deep.png"]).max() == 128            # scaled, not clipped
    assert np.asarray(Image.open(root / "dogs/deep.png").convert("RGB")).min() == 255  # naive
    assert np.asarray(by_name["clear.png"]).min() == 255           # transparent -> white
    gray = np.asarray(Image.open(root / "dogs/gray.png"))
    assert (np.asarray(by_name["gray.png"]) == gray[..., None]).all()
    summary = dataset.summary()
    for said in ("1 CMYK (CMYK)", "1 16-bit (I;16)", "1 transparent (RGBA)", "1 grayscale (L)",
                 "1 palette (P)"):
        assert said in summary


@pytest.mark.parametrize("mode, value, expected", [
    ("F", 0.5, 128), ("F", 300.0, 255), ("I", 65535, 255), ("I", 200, 200), ("1", 1, 255)])
def test_to_rgb_scales_float_and_wide_integer_images(mode, value, expected):
    image = Image.new(mode, (4, 3), value)
    assert np.asarray(to_rgb(image)).tolist() == [[[expected] * 3] * 4] * 3


def test_images_smaller_than_the_models_minimum_are_skipped_and_explained(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        photo(seed=1).save(tmp_path / name / "big.png")
    photo((20, 12)).save(tmp_path / "a" / "thumb.png")
    with pytest.warns(UserWarning, match=r"a/thumb.png: 20x12 pixels, smaller than min_size 32x32"):
        dataset = ImageFolder(tmp_path, min_size=(32, 32))  # weights.meta["min_size"]
    assert len(dataset) == 2
    assert len(ImageFolder(tmp_path)) == 3  # without min_size it is kept


def test_empty_single_and_missing_class_folders_are_explained(tmp_path):
    (tmp_path / "cats").mkdir()
    photo().save(tmp_path / "cats" / "1.jpg")
    with pytest.raises(ValueError, match=r"one class folder \(cats/\).*at least two.*Fix:"):
        ImageFolder(tmp_path)
    (tmp_path / "dogs").mkdir()
    with pytest.raises(ValueError, match=r"dogs has no usable images\. Fix: put images of 'dogs'"):
        ImageFolder(tmp_path)
    (tmp_path / "dogs" / "1.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"dogs has no usable images \(skipped: 1.jpg \(not an "):
        ImageFolder(tmp_path)
    loose = tmp_path / "loose"
    loose.mkdir()
    photo().save(loose / "1.jpg")
    photo().save(loose / "2.png")
    with pytest.raises(ValueError, match=r"no class subfolders but 2 images directly in it.*"
                                         r"one subfolder per class"):
        ImageFolder(loose)
    with pytest.raises(FileNotFoundError, match="No folder"):
        ImageFolder(tmp_path / "nowhere")


def test_a_file_damaged_after_the_check_is_named_when_read(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        photo().save(tmp_path / name / "1.jpg")
    dataset = ImageFolder(tmp_path)
    (tmp_path / "b" / "1.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(ValueError, match=r"b/1.jpg cannot be read as an image.*Fix:"):
        dataset[1]
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.jpg")


def test_cmyk_tiff_loads_as_rgb(tmp_path):
    photo().convert("CMYK").save(tmp_path / "print.tiff")
    image = load_image(tmp_path / "print.tiff")
    assert image.mode == "RGB" and image.size == (48, 40)


def test_feature_cache_key_tells_the_converting_loader_from_torchvision(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        photo().save(tmp_path / name / "1.png")
    backbone = nn.Flatten()
    ours, theirs = ImageFolder(tmp_path), TorchvisionImageFolder(tmp_path)
    assert feature_cache_key(backbone, ours) != feature_cache_key(backbone, theirs)
    assert feature_cache_key(backbone, ours) == feature_cache_key(backbone, ImageFolder(tmp_path))


# --- model and training -----------------------------------------------------------------------

class NamedClasses(TensorDataset):
    """A TensorDataset that declares its class names, as an ImageFolder does."""

    def __init__(self, *tensors, classes):
        super().__init__(*tensors)
        self.classes = classes


def small_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes: 0, 1, 2


def test_num_classes_that_do_not_match_the_data_are_named_with_the_fix():
    x, y = small_data()
    dataset = NamedClasses(x, y, classes=["ants", "bees", "wasps"])
    too_many = nn.Linear(8, 5)  # a head made for other data: trains without complaint otherwise
    with pytest.raises(ValueError, match=r"The data has 3 classes \(ants, bees, wasps\) but the "
                                         r"model has 5 outputs.*replace_head\(model, num_classes=3\)"):
        fit(too_many, DataLoader(Subset(dataset, range(64)), batch_size=16), device=CPU,
            num_epochs=1, **QUIET)
    with pytest.raises(ValueError, match=r"class 2, but the model has 2 outputs.*num_classes=3"):
        fit(nn.Linear(8, 2), DataLoader(TensorDataset(x, y), batch_size=96), device=CPU,
            num_epochs=1, **QUIET)
    history = fit(nn.Linear(8, 3), DataLoader(dataset, batch_size=16), device=CPU, num_epochs=1,
                  **QUIET)
    assert len(history) == 1


class NeedsSmallBatches(nn.Module):
    """Raises what CUDA raises when a batch does not fit, for batches over ``limit``."""

    def __init__(self, limit):
        super().__init__()
        self.limit, self.linear = limit, nn.Linear(8, 3)

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)")
        return self.linear(x)


def test_out_of_memory_names_a_smaller_batch_size_that_then_fits(capsys):
    x, y = small_data(n=128)
    model = NeedsSmallBatches(limit=16)
    batch_size, accumulate, tried = 64, 1, []
    while True:
        loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
        try:
            history = fit(model, loader, device=CPU, num_epochs=1, accumulate=accumulate, **QUIET)
            break
        except torch.OutOfMemoryError as exc:
            message = str(exc)
            assert f"ran out of memory with batches of {batch_size}" in message
            assert "Tried to allocate 2.00 GiB" in message and "The model keeps" in message
            tried.append(batch_size)
            batch_size = int(message.split("batch_size=")[1].split(")")[0])
            accumulate = int(message.split("accumulate=")[1].split(" ")[0])
    assert tried == [64, 32] and (batch_size, accumulate) == (16, 4)  # effective batch kept: 64
    assert len(history) == 1
    with pytest.raises(torch.OutOfMemoryError, match="batches of one already"):
        fit(NeedsSmallBatches(limit=0), DataLoader(TensorDataset(x, y), batch_size=1),
            device=CPU, num_epochs=1, **QUIET)
    with pytest.raises(torch.OutOfMemoryError, match=r"batches of 128.*batch_size=64\)\. The"):
        fit(NeedsSmallBatches(limit=100), DataLoader(TensorDataset(x, y), batch_size=8),
            DataLoader(TensorDataset(x, y), batch_size=128), device=CPU, num_epochs=1, **QUIET)


def test_other_runtime_errors_pass_through_unchanged():
    class Broken(nn.Linear):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    x, y = small_data()
    with pytest.raises(RuntimeError, match="^mat1 and mat2 shapes cannot be multiplied$"):
        fit(Broken(8, 3), DataLoader(TensorDataset(x, y), batch_size=8), device=CPU, num_epochs=1,
            **QUIET)


# --- determinism ------------------------------------------------------------------------------

def seeded_run(num_epochs=3):
    """What a lesson does: seed_everything, then a model, shuffled batches, dropout and fit."""
    seed_everything(0)
    x, y = small_data(n=192)
    train = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=32)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    history = fit(model, train, val, device=CPU, num_epochs=num_epochs, lr=1e-2, **QUIET)
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]
    return rows, model.state_dict()


def test_fit_twice_with_a_fixed_seed_gives_identical_history_and_weights():
    first_rows, first_weights = seeded_run()
    torch.rand(1000)  # anything in between must not matter: the seed decides
    second_rows, second_weights = seeded_run()
    assert first_rows == second_rows  # exact floats, not approximately
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    assert len({row["train_loss"] for row in first_rows}) == 3  # it did train


@pytest.mark.parametrize("path", sorted((TESTS.parent / "notebooks").glob("*.ipynb")),
                         ids=lambda path: path.name)
def test_every_notebook_states_its_seed_and_seeds_everything_with_it(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    parameters = [c.source for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert parameters and re.search(r"^SEED = \d+", parameters[0], re.M), \
        f"{path.name}: its parameters cell does not state SEED = <number>"
    assert any("seed_everything(SEED)" in c.source for c in cells), \
        f"{path.name} never calls seed_everything(SEED)"


# --- a process killed in the middle of a checkpoint write -------------------------------------

def train_until_killed(checkpoint: str) -> None:
    """Run in a child process: fit 4 epochs; the third checkpoint write stops half-way and
    waits there to be killed, as a crash or a kill -9 would catch it."""
    real_save = torch.save

    def save_half_then_hang(obj, file, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 3:
            buffer = io.BytesIO()
            real_save(obj, buffer)
            file.write(buffer.getvalue()[:buffer.tell() // 2])
            file.flush()
            print("HALF-WRITTEN", flush=True)
            time.sleep(120)
        return real_save(obj, file, *args, **kwargs)

    torch.save = save_half_then_hang
    model, train = kill_test_run()
    fit(model, train, device=CPU, num_epochs=4, lr=1e-2, restore_best=False,
        checkpoint=checkpoint, **QUIET)


def kill_test_run():
    torch.manual_seed(3)
    x, y = small_data(n=128)
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3)), train


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_killed_during_a_checkpoint_write_keeps_the_previous_checkpoint_and_resume_continues(
        tmp_path):
    checkpoint = tmp_path / "run.pt"
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_reliability as t; "
            f"t.train_until_killed({str(checkpoint)!r})")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    threading.Timer(120, child.kill).start()  # never hang the test suite
    try:
        assert child.stdout.readline().strip() == "HALF-WRITTEN", "the child did not get there"
        before = checkpoint.read_bytes()  # epoch 2's checkpoint, while epoch 3's is half-written
        (partial,) = tmp_path.glob(".run.pt.*.tmp")
        assert 0 < partial.stat().st_size
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert checkpoint.read_bytes() == before  # the kill changed nothing under the real name
    with pytest.raises(Exception):  # the half-written file is not a checkpoint...
        torch.load(partial, weights_only=True)
    saved = torch.load(checkpoint, weights_only=True)  # ...and the real one loads whole
    assert saved["epoch"] == 2 and len(saved["history"]) == 2

    straight, train = kill_test_run()
    fit(straight, train, device=CPU, num_epochs=4, lr=1e-2, restore_best=False, **QUIET)
    resumed, train = kill_test_run()
    torch.manual_seed(999)  # the checkpoint's random state must decide, not this
    history = fit(resumed, train, device=CPU, num_epochs=4, lr=1e-2, restore_best=False,
                  checkpoint=checkpoint, resume=checkpoint, **QUIET)
    assert history["epoch"] == [1, 2, 3, 4]
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(),
                                                 resumed.state_dict().values()))
    again = load_checkpoint(checkpoint, model=resumed, optimizer=torch.optim.AdamW(
        resumed.parameters()), scheduler=None, scaler=None)
    assert again["epoch"] == 4


# --- quiz banks that are not UTF-8 ------------------------------------------------------------

def test_a_quiz_bank_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "bank.yaml"
    path.write_bytes("id: demo\nquestions:\n  - {id: a, type: text, prompt: Caf\u00e9?, answer: x}\n"
                     .encode("cp1252"))
    with pytest.raises(BankError, match=r"(?s)bank.yaml.*not UTF-8 text: byte 0xe9 on line 3.*Fix:"):
        load_bank(path)
