"""labkit.gradcam on hand-built models whose evidence sits where we put it, and on a real
torchvision architecture with random weights (CPU, no download)."""

import matplotlib
import pytest
import torch
import torchvision
from torch import nn

from labkit.gradcam import grad_cam, plot_gradcam

matplotlib.use("Agg")

SIZE = 32


class ColourDetector(nn.Module):
    """Channel 0 of ``features`` lights up on red pixels, channel 1 on green ones; class 0
    is "red" (the mean of channel 0), class 1 is "green" (the mean of channel 1)."""

    def __init__(self, inplace_relu=False):
        super().__init__()
        self.features = nn.Conv2d(3, 2, 1)
        self.relu = nn.ReLU(inplace=inplace_relu)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            # red - green - blue for channel 0, green - red - blue for channel 1
            self.features.weight.copy_(torch.tensor([[1., -1, -1], [-1, 1, -1]])[:, :, None, None])
            self.features.bias.zero_()
            self.fc.weight.copy_(torch.eye(2))
            self.fc.bias.zero_()

    def forward(self, x):  # (N, 3, H, W)
        return self.fc(self.pool(self.relu(self.features(x))).flatten(1))


def two_blobs(n=2):
    """A red square top-left and a green square bottom-right on black: (n, 3, 32, 32)."""
    images = torch.zeros(n, 3, SIZE, SIZE)
    images[:, 0, 2:10, 2:10] = 1.0     # red, top-left
    images[:, 1, 22:30, 22:30] = 1.0   # green, bottom-right
    return images


def peak(heatmap):
    row, col = divmod(int(heatmap.argmax()), heatmap.shape[-1])
    return row, col


def region_mean(heatmap, rows, cols):
    return heatmap[rows, cols].mean().item()


@pytest.mark.parametrize("inplace_relu", [False, True])
def test_each_class_lights_up_its_own_region(inplace_relu):
    model = ColourDetector(inplace_relu).eval()
    images = two_blobs()
    red = grad_cam(model, model.features, images, targets=0)
    green = grad_cam(model, model.features, images, targets=1)
    assert red.shape == green.shape == (2, SIZE, SIZE)
    r, c = peak(red[0])
    assert 2 <= r < 10 and 2 <= c < 10, (r, c)
    r, c = peak(green[0])
    assert 22 <= r < 30 and 22 <= c < 30, (r, c)
    # The other colour's square is dark in each map: the map is class-specific.
    assert region_mean(red[0], slice(22, 30), slice(22, 30)) < 0.05
    assert region_mean(green[0], slice(2, 10), slice(2, 10)) < 0.05
    assert region_mean(red[0], slice(3, 9), slice(3, 9)) > 0.9


def test_evidence_against_a_class_is_not_shown():
    model = ColourDetector().eval()
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[1., 0], [0, -1]]))  # green counts *against* class 1
    # After the model's ReLU every activation is >= 0 and every channel weight of class 1
    # is <= 0, so nothing speaks for the class; Grad-CAM's own ReLU shows nothing.
    heatmap = grad_cam(model, "relu", two_blobs(1), targets=1)[0]
    assert heatmap.max() == 0
    assert grad_cam(model, "relu", two_blobs(1), targets=0)[0].max() == 1


def test_default_target_is_the_predicted_class():
    model = ColourDetector().eval()
    images = two_blobs(1)
    images[:, 1] = 0  # only red left: the model predicts class 0
    assert model(images).argmax().item() == 0
    assert torch.equal(grad_cam(model, model.features, images),
                       grad_cam(model, model.features, images, targets=[0]))


def test_one_target_per_image():
    model = ColourDetector().eval()
    both = grad_cam(model, model.features, two_blobs(2), targets=torch.tensor([0, 1]))
    assert peak(both[0])[0] < 16 and peak(both[1])[0] >= 16


def test_hooks_are_removed_and_the_mode_and_grads_are_left_alone():
    model = ColourDetector().train()
    grad_cam(model, model.features, two_blobs())
    assert not model.features._forward_hooks and not model.features._backward_hooks
    assert model.training  # restored
    assert all(p.grad is None for p in model.parameters())  # nothing written into .grad


def test_hooks_are_removed_after_an_error_too():
    model = ColourDetector()
    with pytest.raises(RuntimeError, match="index 5 is out of bounds"):  # torch's own message
        grad_cam(model, model.features, two_blobs(), targets=5)
    assert not model.features._forward_hooks
    with pytest.raises(ValueError, match="feature maps"):
        grad_cam(model, model.fc, two_blobs())
    assert not model.fc._forward_hooks


def test_runs_in_eval_mode_so_batchnorm_statistics_do_not_move():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).train()
    before = model[1].running_mean.clone()
    grad_cam(model, model[0], torch.randn(3, 3, 16, 16))
    assert torch.equal(model[1].running_mean, before)
    assert model.training


def test_a_frozen_resnet_on_the_cpu():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=2).eval()
    model.requires_grad_(False)  # a fully frozen model: the gradient still reaches layer4
    images = torch.randn(3, 3, 64, 64)
    heatmaps = grad_cam(model, "layer4", images)
    assert heatmaps.shape == (3, 64, 64) and heatmaps.device.type == "cpu"
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    assert (heatmaps.flatten(1).amax(dim=1) == 1).any()  # each map scaled to its own peak
    assert not images.requires_grad and not model.layer4._forward_hooks


def test_unknown_or_foreign_layers_and_unused_layers_are_named():
    model = ColourDetector()
    with pytest.raises(AttributeError, match="has no attribute `layer9`"):  # torch's message
        grad_cam(model, "layer9", two_blobs())
    with pytest.raises(RuntimeError, match="not used in the forward pass"):
        grad_cam(model, nn.Conv2d(3, 2, 1), two_blobs())  # a layer of no model: never called
    model.spare = nn.Conv2d(3, 2, 1)  # registered, never called in forward
    with pytest.raises(RuntimeError, match="not used in the forward pass"):
        grad_cam(model, model.spare, two_blobs())
    assert not model.spare._forward_hooks


def test_the_overlay_plot_draws_one_panel_per_image():
    model = ColourDetector().eval()
    images = two_blobs(3)
    heatmaps = grad_cam(model, model.features, images)
    fig = plot_gradcam(images, heatmaps, titles=["a", "b", "c"])
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 and all(len(ax.images) == 2 for ax in shown)
    assert [ax.get_title() for ax in shown] == ["a", "b", "c"]
