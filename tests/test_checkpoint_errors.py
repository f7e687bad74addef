"""Checkpoints that cannot be written, resuming with another optimizer, and degenerate data:
each a clear error that names the problem and the fix, before any work is spent or anything is
changed. Real folders, real files, a real file-size limit in a child process and, where the
machine allows mounting, a real full disk.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.checkpoint import CheckpointError
from labkit.train import NonFiniteLoss, fit

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


def data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()


def loader(x=None, y=None, batch_size=16, **kwargs):
    if x is None:
        x, y = data()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, **kwargs)


def model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


def weights(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def fit_counting_batches(checkpoint, **kwargs):
    """fit, with the number of batches trained before it stopped; the error, if any."""
    batches, net = [], model()
    net.register_forward_hook(lambda module, inputs, output: batches.append(1))
    try:
        fit(net, loader(), device=CPU, num_epochs=2, checkpoint=checkpoint, **kwargs)
    except Exception as error:  # noqa: BLE001 - the test looks at which one
        return len(batches), error
    return len(batches), None


# --- a checkpoint path that cannot be written: refused before the first epoch -----------------

@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write in: chmod 555, or, as root (whom modes do not stop),
    /sys, which is read-only for everyone on Linux."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        for candidate in (folder, Path("/sys")):
            try:
                fd, probe = tempfile.mkstemp(dir=candidate)
            except OSError:
                yield candidate
                return
            os.close(fd)
            os.unlink(probe)
        pytest.skip("no folder here refuses writes")
    finally:
        folder.chmod(0o755)


def test_a_read_only_folder_is_refused_before_the_first_epoch(read_only_folder):
    path = read_only_folder / "run.pt"
    trained, error = fit_counting_batches(path)
    assert trained == 0, "an epoch was trained before the checkpoint path was checked"
    assert isinstance(error, CheckpointError) and isinstance(error, OSError), error
    assert str(path) in str(error) and "Fix:" in str(error) and ".tmp" not in str(error)
    assert "read-only" in str(error) or "permission" in str(error).lower()


def test_a_checkpoint_path_that_is_a_folder_is_refused_before_the_first_epoch(tmp_path):
    trained, error = fit_counting_batches(tmp_path)
    assert trained == 0 and isinstance(error, CheckpointError), error
    assert "is a folder" in str(error) and str(tmp_path / "run.pt") in str(error)


@pytest.mark.parametrize("depth", [1, 2])
def test_a_checkpoint_path_under_a_file_is_refused_before_the_first_epoch(tmp_path, depth):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    path = tmp_path / "notes.txt" / ("sub/" * (depth - 1)) / "run.pt"
    trained, error = fit_counting_batches(path)
    assert trained == 0 and isinstance(error, CheckpointError), error
    assert str(tmp_path / "notes.txt") in str(error) and "is a file" in str(error)
    assert "Fix:" in str(error)
    assert (tmp_path / "notes.txt").read_text() == "a file, not a folder"


# --- a write that fails half-way: a clear error, the previous checkpoint kept -----------------

RESUME_UNDER_LIMIT = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
import test_checkpoint_errors as t
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
try:
    t.fit(t.model(), t.loader(), device=t.CPU, num_epochs=3, checkpoint={path!r},
          resume={path!r})
except Exception as error:
    print(type(error).__name__, "|", error)
"""


@pytest.mark.skipif(sys.platform == "win32",
                    reason="file-size limits are POSIX")
def test_a_file_size_limit_gives_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    fit(model(), loader(), device=CPU, num_epochs=1, checkpoint=path)
    before = path.read_bytes()
    code = RESUME_UNDER_LIMIT.format(tests=str(ROOT / "tests"), limit=len(before) // 2,
                                     path=str(path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    name, _, message = done.stdout.strip().rpartition("\n")[2].partition(" | ")
    assert name == "CheckpointError", done.stdout + done.stderr
    assert str(path) in message and "after epoch 2" in message and "Fix:" in message
    assert "unchanged" in message and ".tmp" not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no stray temporary file


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), where this machine lets the tests mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root on Linux)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_gives_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, small_disk):
    path = small_disk / "run.pt"
    fit(model(), loader(), device=CPU, num_epochs=1, checkpoint=path)
    before = path.read_bytes()
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * (free - len(before) // 2))
    with pytest.raises(CheckpointError) as error:
        fit(model(), loader(), device=CPU, num_epochs=3, checkpoint=path, resume=path)
    message = str(error.value)
    assert str(path) in message and "after epoch 2" in message and "Fix:" in message
    assert "space" in message and "unchanged" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "run.pt"]


# --- resuming with another optimizer: refused before anything changes --------------------------

def _checkpoint(tmp_path, make_optimizer=None, trainable=None):
    net = model()
    if trainable is not None:
        trainable(net)
    path = tmp_path / "saved.pt"
    optimizer = make_optimizer(net) if make_optimizer else None
    fit(net, loader(), device=CPU, num_epochs=1, optimizer=optimizer, checkpoint=path)
    return path


def _refused_and_unchanged(path, net, optimizer, match):
    before, opt_before = weights(net), repr(optimizer.state_dict())
    on_disk = path.read_bytes()
    with pytest.raises(ValueError, match=match) as error:
        fit(net, loader(), device=CPU, num_epochs=2, optimizer=optimizer, resume=path,
            checkpoint=path)
    assert "Nothing was loaded" in str(error.value) and "Fix:" in str(error.value)
    assert same(weights(net), before), "the model's weights changed before the refusal"
    assert repr(optimizer.state_dict()) == opt_before
    assert path.read_bytes() == on_disk


def sgd(net):
    return torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)


def adam(net):
    return torch.optim.Adam(net.parameters(), lr=1e-3)


@pytest.mark.parametrize("saved_with, resumed_with, names", [
    (None, sgd, "AdamW.*SGD"),            # today: KeyError 'momentum', weights overwritten
    (sgd, lambda net: torch.optim.AdamW(net.parameters()), "SGD.*AdamW"),
    (adam, lambda net: torch.optim.AdamW(net.parameters()), "Adam.*AdamW"),  # today: accepted
])
def test_resuming_with_another_optimizer_is_refused_before_anything_changes(
        tmp_path, saved_with, resumed_with, names):
    path = _checkpoint(tmp_path, saved_with)
    net = model(seed=5)
    _refused_and_unchanged(path, net, resumed_with(net), names)


def test_an_older_checkpoint_without_the_optimizers_name_is_still_checked(tmp_path):
    path = _checkpoint(tmp_path)  # AdamW
    saved = torch.load(path, weights_only=True)
    saved.pop("optimizer_class", None)
    torch.save(saved, path)
    net = model(seed=5)
    _refused_and_unchanged(path, net, sgd(net), "another optimizer")


def test_resuming_with_other_trainable_parameters_is_refused_before_anything_changes(tmp_path):
    path = _checkpoint(tmp_path, trainable=lambda net: net[0].requires_grad_(False))
    net = model(seed=5)  # now everything trains: the optimizer has more tensors than was saved
    _refused_and_unchanged(path, net, torch.optim.AdamW(net.parameters()), "parameter")


def test_resuming_with_the_same_optimizer_still_works(tmp_path):
    path = _checkpoint(tmp_path, sgd)
    net = model(seed=5)
    history = fit(net, loader(), device=CPU, num_epochs=2, optimizer=sgd(net), resume=path)
    assert history["epoch"] == [1, 2]


# --- degenerate data and models --------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: loader(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)),
    lambda: loader(batch_size=200, drop_last=True),
])
def test_a_training_loader_with_no_batches_is_a_clear_error(make):
    with pytest.raises(ValueError, match=r"no batches.*Fix:") as error:
        fit(model(), make(), device=CPU, num_epochs=1)
    assert "batch_size" in str(error.value)


@pytest.mark.parametrize("own_optimizer", [False, True])
def test_a_model_with_nothing_trainable_names_what_to_unfreeze(own_optimizer):
    net = model().requires_grad_(False)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1) if own_optimizer else None
    with pytest.raises(ValueError, match=r"nothing to train.*Fix:.*unfreeze") as error:
        fit(net, loader(), device=CPU, num_epochs=1, optimizer=optimizer)
    assert "empty parameter list" not in str(error.value)


@pytest.mark.parametrize("bad, where", [(float("nan"), 0), (float("inf"), 40)])
def test_non_finite_inputs_are_named_as_such_not_blamed_on_the_learning_rate(bad, where):
    x, y = data()
    x[where, 3] = bad
    with pytest.raises(NonFiniteLoss) as error:
        fit(model(), loader(x, y), device=CPU, num_epochs=1)
    message = str(error.value)
    assert "inputs" in message and f"batch {where // 16 + 1}" in message, message
    assert "learning rate" not in message and "Fix:" in message


def test_a_too_high_learning_rate_is_still_blamed_on_the_learning_rate():
    net = model()
    with pytest.raises(NonFiniteLoss, match="lower the learning rate"):
        fit(net, loader(), device=CPU, num_epochs=3,
            optimizer=torch.optim.SGD(net.parameters(), lr=1e30))
