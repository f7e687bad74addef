"""labkit.train, checkpoint, metrics and the LR finder on tiny models (CPU, seconds)."""

import os
import signal

import nbformat
import papermill
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.checkpoint import load_checkpoint
from labkit.lr_finder import find_lr
from labkit.metrics import accuracy, confusion_matrix
from labkit.train import NonFiniteLoss, evaluate, fit, predict

CPU = torch.device("cpu")


def make_data(n=480, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = ((x[:, 0] - x[:, 1]) > 0).long() + 2 * (x[:, 2] > 0.5).long()  # 4 classes
    return x, y


def loaders(batch_size=32, shuffle=True):
    x, y = make_data()
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=batch_size, shuffle=shuffle)
    val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=64)
    return train, val


def make_model(seed=0, dropout=0.1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 4))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b, atol=0.0):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def on_training_batch(model, epoch, batch, action, batches_per_epoch=12):
    """Call ``action()`` just before the model's forward pass on that training batch (1-based),
    as fit runs it: a forward pre-hook, counting the calls in train mode only."""
    calls = []

    def hook(module, inputs):
        if module.training:
            calls.append(1)
            if len(calls) == (epoch - 1) * batches_per_epoch + batch:
                action()
    return model.register_forward_pre_hook(hook)


def test_fit_learns_a_tiny_problem_and_records_history(capsys):
    train, val = loaders()
    model = make_model()
    history = fit(model, train, val, device=CPU, num_epochs=15, lr=1e-2, restore_best=True)
    assert len(history) == 15 and history["epoch"] == list(range(1, 16))
    assert history["val_accuracy"][history.best_epoch - 1] >= 0.9
    assert evaluate(model, val, CPU)["accuracy"] == pytest.approx(history.best_value and
                                                                 history["val_accuracy"][history.best_epoch - 1])
    assert history["train_loss"][-1] < history["train_loss"][0] / 3
    assert all(s > 0 for s in history["seconds"]) and set(history["lr"]) == {1e-2}
    assert "Restored the best weights" in capsys.readouterr().out


def test_best_weights_are_restored():
    train, val = loaders()
    model = make_model()
    history = fit(model, train, val, device=CPU, num_epochs=6, lr=5e-2, restore_best=True)
    train, val = loaders()
    again = make_model()  # the same seed: the same run, stopped after the best epoch
    fit(again, train, val, device=CPU, num_epochs=history.best_epoch, lr=5e-2)
    assert same_weights(weights(model), weights(again))


def run_with_interrupt(tmp_path, stop_epoch, stop_batch):
    """A real SIGINT, as the Jupyter stop button sends, in the middle of an epoch."""
    torch.manual_seed(1)
    train, val = loaders()
    model = make_model()
    on_training_batch(model, stop_epoch, stop_batch, lambda: os.kill(os.getpid(), signal.SIGINT))
    history = fit(model, train, val, device=CPU, num_epochs=6, lr=1e-2,
                  checkpoint=tmp_path / "run.pt")
    return model, history


def test_interrupt_stops_after_the_batch_keeps_history_and_leaves_a_whole_checkpoint(tmp_path, capsys):
    before = signal.getsignal(signal.SIGINT)  # not always Python's default in a test worker
    model, history = run_with_interrupt(tmp_path, stop_epoch=3, stop_batch=4)
    out = capsys.readouterr().out
    assert history.interrupted and len(history) == 2
    assert "stopping after this batch" in out and "Stopped by interrupt" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    assert saved["epoch"] == 2 and len(saved["history"]) == 2
    assert signal.getsignal(signal.SIGINT) is before  # the handler fit replaced is put back


def test_resume_after_an_interrupt_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    torch.manual_seed(1)
    train, val = loaders()
    straight = make_model()
    fit(straight, train, val, device=CPU, num_epochs=6, lr=1e-2, restore_best=False)

    run_with_interrupt(tmp_path, stop_epoch=3, stop_batch=4)
    torch.manual_seed(12345)  # the checkpoint's RNG state must win over whatever happened since
    train, val = loaders()
    resumed = make_model(seed=99)
    history = fit(resumed, train, val, device=CPU, num_epochs=6, lr=1e-2, restore_best=False,
                  checkpoint=tmp_path / "run.pt", resume=tmp_path / "run.pt")
    assert len(history) == 6 and not history.interrupted
    assert same_weights(weights(resumed), weights(straight))


def test_early_stopping_stops_and_says_so(capsys):
    train, val = loaders()
    history = fit(make_model(), train, val, device=CPU, num_epochs=50, lr=0.3, patience=2,
                  optimizer=None)
    assert history.stopped_early and len(history) < 50
    assert len(history) - history.best_epoch == 2
    assert "Stopped early" in capsys.readouterr().out


def test_gradient_accumulation_matches_one_big_batch():
    x, y = make_data(128)
    big = make_model(dropout=0.0)
    small = make_model(dropout=0.0)
    for model, batch_size, accumulate in ((big, 32, 1), (small, 16, 2)):
        loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
        fit(model, loader, device=CPU, num_epochs=2, accumulate=accumulate,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert same_weights(weights(big), weights(small), atol=1e-6)


def test_gradient_clipping_bounds_each_step():
    x, y = make_data(32)
    model = make_model(dropout=0.0)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, DataLoader(TensorDataset(x, y), batch_size=32), device=CPU, num_epochs=1,
        max_grad_norm=1e-3, optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 1e-3 + 1e-7


def test_scheduler_per_batch_and_per_epoch():
    train, _ = loaders()  # 12 batches
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, train, device=CPU, num_epochs=2, optimizer=optimizer, scheduler=scheduler,
                  scheduler_step="batch")
    assert history["lr"] == [1.0, 0.5**12]
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, train, device=CPU, num_epochs=3, optimizer=optimizer, scheduler=scheduler,
                  scheduler_step="epoch")
    assert history["lr"] == [1.0, 0.5, 0.25]


def dtypes_of_logits(model):
    """The dtype of the model's output in each forward pass (a forward hook)."""
    seen = set()
    model.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    return seen


def test_mixed_precision_is_off_on_the_cpu():
    train, _ = loaders()
    model = make_model()
    seen = dtypes_of_logits(model)
    fit(model, train, device=CPU, num_epochs=1, amp=True)
    assert seen == {torch.float32}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed precision needs a CUDA GPU; this machine has none")
def test_mixed_precision_trains_on_cuda():
    train, val = loaders()
    model = make_model()
    seen = dtypes_of_logits(model)
    history = fit(model, train, val, device=torch.device("cuda"), num_epochs=10, lr=1e-2)
    assert seen == {torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16}
    assert max(history["val_accuracy"]) >= 0.9


# --- bad input: clear errors, nothing overwritten -------------------------------------------

def test_a_loader_of_triples_is_a_clear_error():
    x, y = make_data(32)
    loader = DataLoader(TensorDataset(x, y, y), batch_size=8)
    with pytest.raises(TypeError, match=r"of length 3.*Fix:"):
        fit(make_model(), loader, device=CPU, num_epochs=1)


def test_wrong_target_shape_and_too_few_outputs_are_named():
    x, y = make_data(32)
    with pytest.raises(RuntimeError, match=r"1D target tensor expected"):  # torch names it
        fit(make_model(), DataLoader(TensorDataset(x, y[:, None]), batch_size=8), device=CPU,
            num_epochs=1)
    with pytest.raises(ValueError, match=r"class 9, but the model has 4 outputs.*replace_head"):
        fit(make_model(), DataLoader(TensorDataset(x, y + 6), batch_size=8), device=CPU,
            num_epochs=1)


def test_nan_loss_names_the_step_suggests_a_lower_lr_and_restores_the_best_weights(tmp_path):
    train, val = loaders()
    model = make_model()

    def explode():  # from epoch 2, batch 4 on, the weights are NaN as a too-high lr would make them
        with torch.no_grad():
            model[0].weight.fill_(float("nan"))

    on_training_batch(model, 2, 4, explode)
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, batch 4 \(lr=1\.0e-02\).*lr=1\.0e-03.*"
                                            r"Restored the best weights: epoch 1"):
        fit(model, train, val, device=CPU, num_epochs=3, lr=1e-2, checkpoint=tmp_path / "c.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.load(tmp_path / "c.pt", weights_only=True)["epoch"] == 1  # NaN epoch never saved


def test_a_really_too_high_lr_is_caught():
    train, _ = loaders()
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    with pytest.raises(NonFiniteLoss, match="lower the learning rate"):
        fit(model, train, device=CPU, num_epochs=3,
            optimizer=torch.optim.SGD(model.parameters(), lr=1e30))


def test_resuming_from_another_architecture_is_refused_and_changes_nothing(tmp_path):
    train, _ = loaders()
    fit(make_model(), train, device=CPU, num_epochs=1, checkpoint=tmp_path / "a.pt")
    on_disk = (tmp_path / "a.pt").read_bytes()
    other = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    before = weights(other)
    with pytest.raises(ValueError, match=r"does not match.*Nothing was loaded.*Fix:"):
        fit(other, train, device=CPU, num_epochs=2, resume=tmp_path / "a.pt",
            checkpoint=tmp_path / "a.pt")
    assert same_weights(weights(other), before)
    assert (tmp_path / "a.pt").read_bytes() == on_disk


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    model = make_model()
    with pytest.raises(ValueError, match="not a readable labkit checkpoint"):
        load_checkpoint(bad, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        scheduler=None, scaler=None)


def test_a_misspelt_scheduler_step_is_refused():
    train, _ = loaders()
    with pytest.raises(ValueError, match=r"scheduler_step='step'.*Fix:"):
        fit(make_model(), train, device=CPU, num_epochs=1, scheduler_step="step")


# --- evaluate, predict, metrics, LR finder ----------------------------------------------------

def test_predict_evaluate_accuracy_and_confusion_matrix_agree():
    train, val = loaders()
    model = make_model()
    fit(model, train, val, device=CPU, num_epochs=5, lr=1e-2)
    model.train()
    result = predict(model, val, CPU)
    assert model.training  # the mode is put back
    assert result.logits.shape == (96, 4) and result.preds.shape == result.targets.shape == (96,)
    assert accuracy(result.logits, result.targets) == pytest.approx(evaluate(model, val, CPU)["accuracy"])
    matrix = confusion_matrix(result.preds, result.targets, num_classes=4)
    assert matrix.sum() == 96 and matrix.trace().item() == (result.preds == result.targets).sum().item()
    assert matrix[1].sum() == (result.targets == 1).sum()  # rows are the true classes


def test_confusion_matrix_by_hand_and_bad_classes():
    matrix = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), num_classes=3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), num_classes=3)


def test_lr_finder_suggests_a_sensible_rate_and_puts_everything_back():
    train, _ = loaders()
    model = make_model()
    before = weights(model)
    result = find_lr(model, train, CPU, num_steps=60)
    assert same_weights(weights(model), before)
    assert 1e-7 <= result.lrs[0] < result.lrs[-1] and len(result.lrs) == len(result.losses)
    assert result.lrs[0] < result.suggestion < result.lrs[-1]
    assert result.plot() is not None
    final_loss = {}
    for lr in (result.suggestion, 1e-5):  # the suggestion must train much better than a timid rate
        model = make_model()
        history = fit(model, train, device=CPU, num_epochs=3,
                      optimizer=torch.optim.SGD(model.parameters(), lr=lr))
        final_loss[lr] = history["train_loss"][-1]
    assert final_loss[result.suggestion] < 0.7 * final_loss[1e-5]


# --- the live plot in a notebook run without a frontend ---------------------------------------

def test_fit_in_a_notebook_leaves_one_image_and_one_history(tmp_path):
    source = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from labkit.train import fit
torch.manual_seed(0)
x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=32)
history = fit(nn.Linear(8, 2), loader, loader, device="cpu", num_epochs=4, lr=0.05, plot=True)
'''
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, tmp_path / "fit.ipynb")
    papermill.execute_notebook(str(tmp_path / "fit.ipynb"), str(tmp_path / "out.ipynb"),
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, [o.get("output_type") for o in outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "4 epoch(s) recorded" in text


def test_fit_trains_the_auxiliary_heads_of_googlenet():
    """In train mode GoogLeNet returns main and auxiliary logits; fit adds 0.4 x each aux loss."""
    import torchvision

    from labkit.transfer import replace_head

    torch.manual_seed(0)
    model = replace_head(torchvision.models.googlenet(weights=None, init_weights=False,
                                                     aux_logits=True), 3)
    before = model.aux1.fc2.weight.clone()
    images, labels = torch.randn(8, 3, 64, 64), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    history = fit(model, DataLoader(TensorDataset(images, labels), batch_size=4), device=CPU,
                  num_epochs=1)
    assert len(history) == 1 and history["train_accuracy"][0] is not None
    assert not torch.equal(model.aux1.fc2.weight, before)  # the aux loss reached its head
