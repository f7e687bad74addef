"""``fit`` under ``torchrun``: two CPU processes on Gloo train exactly like one process with the
same global batch, only rank 0 writes checkpoints, and resume works the same way."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.distributed import prepare, rank, world_size

TORCHRUN = Path(sys.executable).with_name("torchrun")

SCRIPT = '''
import json, sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labkit.checkpoint
import labkit.train
from labkit.device import seed_everything
from labkit.distributed import cleanup, rank, setup, world_size

out, epochs, global_batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
resume = sys.argv[4] if len(sys.argv) > 4 else None
device = setup()
seed_everything(0)
generator = torch.Generator().manual_seed(0)
inputs = torch.randn(96, 8, generator=generator)
targets = (inputs[:, 0] + inputs[:, 1] > 0).long() + (inputs[:, 2] > 1).long()
train = TensorDataset(inputs[:64], targets[:64])
val = TensorDataset(inputs[64:], targets[64:])        # 32 examples
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
batch = global_batch // world_size()                  # the same global batch on any N
train_loader = DataLoader(train, batch_size=batch, shuffle=False)
val_loader = DataLoader(val, batch_size=5)            # 32 is not a multiple of 5 or of 2 x 5

saves = []
real_save = labkit.checkpoint.save_checkpoint
def spy(*args, **kwargs):                             # who writes checkpoints
    saves.append(rank())
    return real_save(*args, **kwargs)
labkit.checkpoint.save_checkpoint = spy

optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
history = labkit.train.fit(model, train_loader, val_loader, device=device, num_epochs=epochs,
                           optimizer=optimizer, checkpoint=out / "checkpoint.pt", resume=resume)
(out / f"rank{rank()}.json").write_text(json.dumps({
    "world_size": world_size(), "saves": saves, "history": history.rows,
    "weights": {k: v.tolist() for k, v in model.state_dict().items()}}))
cleanup()
'''


def train(tmp_path, name, *, processes, epochs=3, resume=None):
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    args = [str(out), str(epochs), "16"] + ([str(resume)] if resume else [])
    if processes == 1:
        command = [sys.executable, str(script), *args]
    else:
        command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={processes}", str(script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {int(p.stem[4:]): json.loads(p.read_text()) for p in out.glob("rank*.json")}
    return out, results, done


def weights(result):
    return {k: torch.tensor(v) for k, v in result["weights"].items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return {"one": train(tmp, "one", processes=1), "two": train(tmp, "two", processes=2),
            "tmp": tmp}


def test_two_processes_train_like_one_with_the_same_global_batch(runs):
    _, one, _ = runs["one"]
    _, two, _ = runs["two"]
    assert sorted(two) == [0, 1] and two[0]["world_size"] == 2 and one[0]["world_size"] == 1
    for name, value in weights(one[0]).items():
        torch.testing.assert_close(weights(two[0])[name], value, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights(two[1])[name], value, atol=1e-5, rtol=1e-5)
    # Losses and accuracies are added up over both processes: the same numbers as one process.
    for single, double in zip(one[0]["history"], two[0]["history"]):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert double[key] == pytest.approx(single[key], abs=1e-5), key
    assert two[0]["history"] == two[1]["history"] or all(
        a[k] == pytest.approx(b[k], abs=1e-6) for a, b in zip(two[0]["history"], two[1]["history"])
        for k in ("train_loss", "val_loss", "val_accuracy"))


def test_only_rank_0_writes_the_checkpoint_and_prints(runs):
    out, two, done = runs["two"]
    assert two[0]["saves"] == [0, 0, 0] and two[1]["saves"] == []
    assert [p.name for p in out.iterdir() if p.name.startswith(("checkpoint", ".checkpoint"))] \
        == ["checkpoint.pt"]
    assert done.stdout.count("labkit: Done.") == 1


def test_resume_under_torchrun_continues_like_an_uninterrupted_run(runs):
    tmp = runs["tmp"]
    first, _, _ = train(tmp, "first-two-epochs", processes=2, epochs=2)
    resumed_from = tmp / "after-two.pt"
    shutil.copy(first / "checkpoint.pt", resumed_from)
    _, resumed, done = train(tmp, "resumed", processes=2, epochs=3, resume=resumed_from)
    assert done.stdout.count("resumed from") == 1
    _, straight, _ = runs["two"]
    for name, value in weights(straight[0]).items():
        torch.testing.assert_close(weights(resumed[0])[name], value, atol=1e-6, rtol=1e-6)
    assert len(resumed[0]["history"]) == 3


# --- single-process pieces ---------------------------------------------------------------------

def test_without_a_process_group_everything_is_one_process():
    assert (rank(), world_size()) == (0, 1)
    model = torch.nn.Linear(2, 2)
    loader = DataLoader(TensorDataset(torch.arange(4)), batch_size=2)
    prepared = prepare(model, loader, loader, torch.device("cpu"))
    assert all(a is b for a, b in zip(prepared, (model, loader, loader)))


def test_two_processes_on_a_one_gpu_machine_both_use_the_cpu(monkeypatch):
    """Appendix 12 starts 2 processes. On a machine with one GPU (a laptop, Colab) the second
    process (LOCAL_RANK 1, played here) used to ask for cuda:1, which does not exist; both now
    use the CPU and Gloo. This machine has no GPU, so torch.cuda is told there is one: the CUDA
    path itself has not run here."""
    import socket

    import torch.distributed as dist

    from labkit.distributed import cleanup, setup

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "1",
                        "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    try:
        assert setup() == torch.device("cpu")
        assert dist.get_backend() == "gloo"
    finally:
        cleanup()
