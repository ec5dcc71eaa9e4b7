"""The CAM base class and Grad-CAM: agreement with pytorch-grad-cam, hooks, caller's state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musicbrain_cli.errors import ConfigError, InputError
from musicbrain_cli.explain import GradCAM, LabelTarget, resolve_layer, top_k_targets


class TinyNet(nn.Module):
    """[B, 1, F, T] -> [B, L]; a named ``fusion`` layer, BatchNorm, dropout and an in-place
    ReLU right after the fusion output (the case that breaks naive hooks)."""

    def __init__(self, n_labels: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.fusion = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.post = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(16, 16, 1), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16, n_labels)

    def forward(self, x):
        return self.fc(self.drop(self.post(self.fusion(self.stem(x))).amax(dim=(2, 3))))


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = TinyNet()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        m.stem[1].running_mean.uniform_(-0.2, 0.2)
        m.stem[1].running_var.uniform_(0.5, 1.5)
    return m


@pytest.fixture
def spec():
    return torch.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 24, 36)).astype(np.float32))


def reference_gradcam(model, layer_module, spec, label):
    from pytorch_grad_cam import GradCAM as RefGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ref = RefGradCAM(model, [layer_module])  # note: calls model.eval() itself
    try:
        return ref(input_tensor=spec, targets=[ClassifierOutputTarget(label)] * spec.shape[0])
    finally:
        ref.activations_and_grads.release()


@pytest.mark.parametrize("layer", ["fusion", "stem.2", "post.1"])
def test_gradcam_equals_pytorch_grad_cam(model, spec, layer):
    model.post[0] = nn.ReLU()  # pytorch-grad-cam's own hooks break on the in-place ReLU
    model.eval()
    with GradCAM(model, layer=layer) as cam:
        ours = cam(spec, targets=[LabelTarget(1), LabelTarget(3)])
    assert ours.maps.shape == (2, 2, 24, 36)
    for k, label in enumerate((1, 3)):
        theirs = reference_gradcam(model, resolve_layer(model, layer), spec, label)
        assert theirs.shape == (2, 24, 36)
        np.testing.assert_allclose(ours.maps[:, k], theirs, atol=2e-5)
    assert ours.labels.tolist() == [[1, 3], [1, 3]]


def test_in_place_op_after_layer(model, spec):
    # TinyNet's post[0] is ReLU(inplace=True) on the fusion output: the map must equal the
    # one from an identical model whose ReLU is not in place.
    model.eval()
    with GradCAM(model) as cam:
        in_place = cam(spec, targets=[LabelTarget(2)])
    model.post[0] = nn.ReLU()
    with GradCAM(model) as cam:
        plain = cam(spec, targets=[LabelTarget(2)])
    np.testing.assert_allclose(in_place.maps, plain.maps, atol=1e-6)
    assert in_place.maps.max() == pytest.approx(1.0)


def test_maps_scaled_and_logits_match_forward(model, spec):
    model.eval()
    with GradCAM(model) as cam:
        res = cam(spec, targets=[LabelTarget(0)])
    assert res.maps.min() >= 0 and np.allclose(res.maps.max(axis=(2, 3)), 1.0)
    with torch.no_grad():
        np.testing.assert_allclose(res.logits, model(spec).numpy(), rtol=1e-5, atol=1e-6)


def test_caller_state_untouched(model, spec):
    model.train()
    model.stem[1].eval()  # a deliberately mixed state must survive
    model.fc.weight.requires_grad_(False)
    modes = {name: m.training for name, m in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    with GradCAM(model) as cam:
        first = cam(spec, targets=[LabelTarget(2)])
        second = cam(spec, targets=[LabelTarget(2)])
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())  # no .grad written, no zero_grad
    # eval mode inside the call: dropout off, so two calls agree exactly.
    np.testing.assert_array_equal(first.maps, second.maps)


def test_eval_mode_false_keeps_training_mode(model, spec):
    model.train()
    seen = []
    model.drop.register_forward_hook(lambda m, i, o: seen.append(m.training))
    with GradCAM(model, eval_mode=False) as cam:
        cam(spec, targets=[LabelTarget(0)])
    assert seen == [True] and model.training


def test_frozen_model_gives_same_maps(model, spec):
    model.eval()
    with GradCAM(model) as cam:
        free = cam(spec, targets=[LabelTarget(4)])
    for p in model.parameters():
        p.requires_grad_(False)
    with GradCAM(model) as cam:
        frozen = cam(spec, targets=[LabelTarget(4)])
    np.testing.assert_allclose(frozen.maps, free.maps, atol=1e-6)
    assert free.maps.max() == pytest.approx(1.0)


def test_hooks_removed_on_exit_and_on_error(model, spec):
    with GradCAM(model) as cam:
        assert len(model.fusion._forward_hooks) == 1
        cam(spec, targets=[LabelTarget(0)])
    assert len(model.fusion._forward_hooks) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with GradCAM(model):
            raise RuntimeError("boom")
    assert len(model.fusion._forward_hooks) == 0
    assert all(len(m._forward_hooks) == 0 and len(m._backward_hooks) == 0 for m in model.modules())


def test_per_sample_targets(model, spec):
    model.eval()
    with GradCAM(model) as cam:
        per_sample = cam(spec, targets=[LabelTarget(torch.tensor([1, 3]))])
        one = cam(spec[:1], targets=[LabelTarget(1)])
        two = cam(spec[1:], targets=[LabelTarget(3)])
    np.testing.assert_allclose(per_sample.maps[0, 0], one.maps[0, 0], atol=1e-6)
    np.testing.assert_allclose(per_sample.maps[1, 0], two.maps[0, 0], atol=1e-6)
    assert per_sample.labels.tolist() == [[1], [3]]


def test_top_k_targets_pick_highest_logits(model, spec):
    model.eval()
    with GradCAM(model) as cam:
        res = cam(spec, targets=top_k_targets(3))
    expected = np.argsort(-res.logits, axis=1)[:, :3]
    assert res.labels.tolist() == expected.tolist()


def test_times_and_freqs_carried_and_checked(model, spec):
    times, freqs = np.arange(36) * 0.02, np.linspace(30, 8000, 24)
    with GradCAM(model) as cam:
        res = cam(spec, targets=[LabelTarget(0)], times=times, freqs=freqs)
        np.testing.assert_array_equal(res.times, times)
        with pytest.raises(InputError, match="35"):
            cam(spec, targets=[LabelTarget(0)], times=times[:-1])


def test_bad_layer_and_misuse(model, spec):
    with pytest.raises(ConfigError, match="'nope'"):
        GradCAM(model, layer="nope")
    cam = GradCAM(model)
    with pytest.raises(InputError, match="with"):
        cam(spec, targets=[LabelTarget(0)])
    with cam:
        with pytest.raises(InputError, match=r"\(24, 36\)"):
            cam(spec[0, 0], targets=[LabelTarget(0)])
        with pytest.raises(InputError, match="no targets"):
            cam(spec, targets=[])


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_works_under_callers_no_grad_and_restores_it(model, spec, context):
    model.eval()
    with GradCAM(model) as cam:
        expected = cam(spec, targets=[LabelTarget(1)])
        with context():
            inside = cam(spec, targets=[LabelTarget(1)])
            assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    np.testing.assert_allclose(inside.maps, expected.maps, atol=1e-6)


def test_backbone_runs_without_graph(model, spec):
    # The layers before the target run under no_grad: their outputs carry no autograd graph.
    seen = []
    model.stem.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    with GradCAM(model) as cam:
        cam(spec, targets=[LabelTarget(0)])
    assert seen == [False]


def test_callers_own_forward_inside_with_block_is_untouched(model, spec):
    model.eval()
    with GradCAM(model) as cam:
        with torch.no_grad():
            out = model(spec)
            assert not torch.is_grad_enabled() and not out.requires_grad
        cam(spec, targets=[LabelTarget(0)])


def test_single_target_without_list(model, spec):
    model.eval()
    with GradCAM(model) as cam:
        single = cam(spec, targets=LabelTarget(2))
        listed = cam(spec, targets=[LabelTarget(2)])
    np.testing.assert_array_equal(single.maps, listed.maps)
    assert single.labels.tolist() == [[2], [2]]
