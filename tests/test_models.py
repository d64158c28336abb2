"""Architectures (issue 2): shapes, gradients, eqs. (1) and (2) by hand, parameter counts, weights."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmark.training.losses import make_loss
from data import DATASETS
from models.base import count_parameters
from models.registry import MODELS, build_model
from models.ctan import CTAB, cross_task_attention
from models.encoder import PretrainedWeightsMissing, ResNetEncoder, pretrained_weights_path

# Each kind of task pair in the registry (Table 2 has three), with the first dataset that has it.
PAIRS: dict[str, str] = {}
for _name, _entry in DATASETS.items():
    PAIRS.setdefault("+".join(t.target for t in _entry.spec.tasks), _name)


def _batch(spec, n=2, size=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, spec.in_channels, size, size, generator=g)
    y = {}
    for t in spec.tasks:
        if t.target == "segmentation":
            y[t.name] = torch.randint(0, t.num_outputs, (n, size, size), generator=g)
        elif t.target == "regression":
            y[t.name] = torch.rand(n, 1, size, size, generator=g) * t.scale
        else:
            y[t.name] = torch.randint(0, max(t.num_outputs, 2), (n,), generator=g)
    return x, y


# ResNet-18 for every pair; ResNet-50's bottleneck blocks for the pair with both decoder kinds (seg +
# dose at ResNet-50 on real slices: tests/test_real_data.py, the paper profile's check).
MIXED = next(p for p, d in PAIRS.items() if {t.kind for t in DATASETS[d].spec.tasks} == {"pixel", "image"})
GRID = [(p, "resnet18") for p in sorted(PAIRS)] + [(MIXED, "resnet50")]


@pytest.mark.parametrize("pair,backbone", GRID)
@pytest.mark.parametrize("method", list(MODELS))
def test_shapes_finite_and_every_parameter_learns(method, pair, backbone):
    spec = DATASETS[PAIRS[pair]].spec
    model = build_model(method, spec.tasks, backbone, pretrained=False, in_channels=spec.in_channels)
    model.start_epoch(1, 10)          # past LTB's warm-up (its epoch 0 sums the branches: α gets no gradient)
    if method == "ltb":               # each task its own branch, all but surely (a hard sample may leave one unused)
        with torch.no_grad():
            model.alpha.copy_(5 * torch.eye(len(spec.tasks)).expand_as(model.alpha))
        torch.manual_seed(0)
    x, y = _batch(spec)
    out = model(x)
    assert set(out) == {t.name for t in spec.tasks}
    for t in spec.tasks:
        expected = (2, t.num_outputs, 64, 64) if t.kind == "pixel" else (2, t.num_outputs)
        assert tuple(out[t.name].shape) == expected, t.name
        assert torch.isfinite(out[t.name]).all()
    loss = sum(make_loss(t)(out[t.name], y[t.name]) for t in spec.tasks)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # A summed loss reaches every parameter tensor with a non-zero gradient somewhere.
    dead = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not dead, f"parameters with an all-zero gradient: {dead[:5]}"


class _ConstantMask(nn.Module):
    def __init__(self, value: float, channels: int):
        super().__init__()
        self.value, self.channels = value, channels

    def forward(self, x):
        return torch.full((x.shape[0], self.channels) + x.shape[2:], self.value)


@pytest.mark.parametrize("method,cross", [("mtan", False), ("ctan", True)])
def test_ctae_applies_the_other_tasks_mask(method, cross):
    """Eq. (1): task t's stage output is A_{t'} ⊙ P (CTAN) instead of A_t ⊙ P (MTAN)."""
    spec = DATASETS["prostate"].spec
    model = build_model(method, spec.tasks, "resnet18", in_channels=1).eval()
    ch = model.encoder.channels
    for j in range(4):
        model.attention[j][0] = _ConstantMask(0.25, ch[j])
        model.attention[j][1] = _ConstantMask(0.75, ch[j])
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        shared, feats = model.attended_features(x)
        s = model.encoder.stem(x)
        for j in range(4):
            body, last = model.encoder.split_stage(j)
            p = last(body(s))
            own, other = (0.75, 0.25) if cross else (0.25, 0.75)
            torch.testing.assert_close(feats[0][j], own * p)
            torch.testing.assert_close(feats[1][j], other * p)
            torch.testing.assert_close(shared[j], p)
            s = p
        # Â_t^j = Pool(A_{t'}^j ⊙ P^j) feeds stage j+1's attention of the same task t.
        pooled = model.shared[0](feats[0][0])
        assert pooled.shape[1:] == (ch[1],) + feats[0][1].shape[2:]


def _decoder_inputs(model, x) -> dict[str, list[torch.Tensor]]:
    """What each task's decoder receives (its four feature maps), captured by forward pre-hooks."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [dec.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, list(args[0])))
             for name, dec in model.decoders.items()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_ctan_decoders_get_shared_skips_and_the_ctab_bottleneck():
    """Algorithm 1 line 29, D_t(Ā_t, U^j): skips are the shared encoder's features, whatever the
    attention masks; the bottleneck is the CTAB output Ā_t, which the masks do change."""
    spec = DATASETS["prostate"].spec
    model = build_model("ctan", spec.tasks, "resnet18", in_channels=1).eval()
    ch = model.encoder.channels
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        stages = model.encoder(x)
    inputs = []
    for values in ((0.25, 0.75), (0.9, 0.1)):
        for j in range(4):
            for k in range(2):
                model.attention[j][k] = _ConstantMask(values[k], ch[j])
        inputs.append(_decoder_inputs(model, x))
        shared, attended = model.attended_features(x)
        bottleneck = model.ctab([f[3] for f in attended])
        for k, t in enumerate(spec.tasks):
            got = inputs[-1][t.name]
            for j in range(3):
                torch.testing.assert_close(got[j], stages[j])          # P^j of the shared encoder
            torch.testing.assert_close(got[3], bottleneck[k])          # Ā_t
    for t in spec.tasks:
        before, after = inputs[0][t.name], inputs[1][t.name]
        for j in range(3):
            torch.testing.assert_close(before[j], after[j])
        assert not torch.allclose(before[3], after[3])


def test_ctab_matches_a_hand_computation_of_eq2():
    torch.manual_seed(1)
    e_t, e_o = torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2)
    d, n = 3, 4
    et, eo = e_t[0].reshape(d, n), e_o[0].reshape(d, n)
    expected = torch.zeros(d, n)
    for q in range(n):          # Ā_t[:, q] = Σ_p ê_t[:, p] <ê_t'[:, p], ê_t[:, q]>
        for p in range(n):
            expected[:, q] += et[:, p] * float(eo[:, p] @ et[:, q])
    raw = cross_task_attention(e_t, e_o, scale=False)[0].reshape(d, n)
    torch.testing.assert_close(raw, expected)
    scaled = cross_task_attention(e_t, e_o)[0].reshape(d, n)
    torch.testing.assert_close(scaled, expected / (n * math.sqrt(d)))


def test_ctab_output_of_a_task_uses_the_other_tasks_embedding_as_query():
    ctab = CTAB(8, 4).eval()
    a, b = torch.randn(1, 8, 3, 3), torch.randn(1, 8, 3, 3)
    with torch.no_grad():
        out_a, out_b = ctab([a, b])
        emb_a, emb_b = ctab.embed[0](a), ctab.embed[1](b)
        torch.testing.assert_close(out_a, cross_task_attention(emb_a, emb_b))
        torch.testing.assert_close(out_b, cross_task_attention(emb_b, emb_a))
        changed, _ = ctab([a, b + 1.0])   # task a's output depends on task b's query
        assert not torch.allclose(changed, out_a)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_parameter_counts_are_in_a_sensible_order(pair):
    spec = DATASETS[PAIRS[pair]].spec
    n = {m: count_parameters(build_model(m, spec.tasks, "resnet18", in_channels=spec.in_channels)) for m in MODELS}
    encoder = count_parameters(ResNetEncoder("resnet18", in_channels=spec.in_channels))
    assert n["stl"] - n["hps"] == encoder          # STL: one more encoder than HPS
    assert n["hps"] < n["mtan"] and n["hps"] < n["ctan"]   # attention adds parameters to HPS
    assert n["ctan"] < n["stl"] and n["mtan"] < n["stl"]


def test_one_channel_stem_sums_the_rgb_filters():
    rgb = ResNetEncoder("resnet18", in_channels=3)
    torch.manual_seed(0)
    grey = ResNetEncoder("resnet18", in_channels=1)
    torch.manual_seed(0)
    reference = ResNetEncoder("resnet18", in_channels=3)
    torch.testing.assert_close(grey.stem[0].weight, reference.stem[0].weight.sum(1, keepdim=True))
    assert rgb.stem[0].weight.shape[1] == 3


def test_pretrained_weights_load_from_the_local_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsMissing, match="resnet18"):
        ResNetEncoder("resnet18", pretrained=True)
    # A checkpoint placed where torchvision keeps it is used (no download involved).
    import torchvision
    source = torchvision.models.resnet18(weights=None)
    path = pretrained_weights_path("resnet18")
    assert path.startswith(str(tmp_path))
    import os
    os.makedirs(os.path.dirname(path))
    torch.save(source.state_dict(), path)
    enc = ResNetEncoder("resnet18", pretrained=True)
    torch.testing.assert_close(enc.stages[3][1].conv2.weight, source.layer4[1].conv2.weight)
    with open(path, "wb") as f:
        f.write(b"truncated")
    with pytest.raises(PretrainedWeightsMissing, match="unreadable"):
        ResNetEncoder("resnet18", pretrained=True)


def test_ctan_requires_a_pair_and_unknown_names_are_rejected():
    spec = DATASETS["prostate"].spec
    with pytest.raises(ValueError, match="pair"):
        build_model("ctan", spec.tasks[:1], "resnet18")
    with pytest.raises(ValueError, match="unknown method"):
        build_model("no-such-method", spec.tasks, "resnet18")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("hps", spec.tasks, "vgg16")


@pytest.mark.parametrize("size", [32, 48, 64, 96])
def test_bottleneck_side_is_the_encoders_stage4_size(size):
    from models.catalog import bottleneck_side
    enc = ResNetEncoder("resnet18", in_channels=1).eval()
    with torch.no_grad():
        assert enc(torch.zeros(1, 1, size, size))[3].shape[-1] == bottleneck_side(size)


def test_ctab_at_one_position_is_a_scaled_copy_of_the_own_embedding():
    """N = 1: Ā_t = ê_t · ⟨ê_t', ê_t⟩ / √d (a per-image scalar times ê_t): no attention over space."""
    torch.manual_seed(3)
    e_t, e_o = torch.randn(4, 16, 1, 1), torch.randn(4, 16, 1, 1)
    closed = e_t * (e_t * e_o).sum(1, keepdim=True) / math.sqrt(16)
    torch.testing.assert_close(cross_task_attention(e_t, e_o), closed)


def test_ctab_at_several_positions_mixes_them_beyond_any_global_scaling():
    """N > 1: Ā_t(:, q) = Σ_p ê_t(:, p) ⟨ê_t'(p), ê_t(q)⟩ / (N√d) is not c · ê_t(:, q) for one scalar c:
    each position receives other positions' features, weighted by cross-task affinity."""
    torch.manual_seed(4)
    e_t, e_o = torch.rand(1, 8, 2, 2), torch.rand(1, 8, 2, 2)
    out = cross_task_attention(e_t, e_o)[0].flatten(1)         # [d, N]
    own = e_t[0].flatten(1)
    c = (out * own).sum() / (own * own).sum()                  # the best single scaling, least squares
    residual = (out - c * own).norm() / out.norm()
    assert residual > 0.05
    # and the output at a position changes when only another position's query changes
    e_o2 = e_o.clone()
    e_o2[0, :, 1, 1] += 1.0
    moved = cross_task_attention(e_t, e_o2)[0, :, 0, 0]
    assert not torch.allclose(moved, cross_task_attention(e_t, e_o)[0, :, 0, 0])


def test_ctan_warns_once_about_a_one_by_one_bottleneck(monkeypatch):
    import warnings

    import models.ctan
    monkeypatch.setattr(models.ctan, "_WARNED_N1", False)
    spec = DATASETS["stoic"].spec
    model = build_model("ctan", spec.tasks, "resnet18", in_channels=3).eval()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with torch.no_grad():
            model(torch.randn(1, 3, 32, 32))
            model(torch.randn(1, 3, 32, 32))
            model(torch.randn(1, 3, 48, 48))
    assert [str(w.message) for w in seen if "1x1 bottleneck" in str(w.message)].__len__() == 1


def test_ltb_branches_by_its_schedule_and_keeps_its_epoch_in_the_state():
    """Warm-up (epoch < E/100): every parent summed; training: one parent per child and stage (hard Gumbel);
    eval: the argmax parent; the epoch travels with the state_dict (a selected state keeps its rule)."""
    spec = DATASETS["stoic"].spec
    model = build_model("ltb", spec.tasks, "resnet18", pretrained=False, in_channels=spec.in_channels)
    model.start_epoch(0, 200)
    assert torch.equal(model.branching(), torch.ones(4, 2, 2))
    model.start_epoch(3, 200)
    with torch.no_grad():
        model.alpha.copy_(torch.tensor([[[0.0, 5.0], [5.0, 0.0]]] * 4))
    torch.manual_seed(0)
    sample = model.branching()
    assert torch.equal(sample.sum(-1), torch.ones(4, 2)) and set(sample.unique().tolist()) == {0.0, 1.0}
    model.eval()
    assert torch.equal(model.branching(), torch.tensor([[[0.0, 1.0], [1.0, 0.0]]] * 4))
    other = build_model("ltb", spec.tasks, "resnet18", pretrained=False, in_channels=spec.in_channels)
    other.load_state_dict(model.state_dict())
    assert int(other.epoch) == 3 and int(other.epochs) == 200


def test_dselect_k_gate_by_hand():
    """The smooth step is 0 / 1 outside ±γ/2 and cubic between; with 4 experts and k = 2 each task's expert
    weights are Σ_i softmax(w)_i Π_b (S(z_ib) or 1 − S(z_ib)), a distribution over the 4 experts."""
    from models.dselect_k import smooth_step

    t = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.5, 2.0])
    torch.testing.assert_close(smooth_step(t, 1.0), torch.tensor([0.0, 0.0, 0.5, -2 * 0.25 ** 3 + 1.5 * 0.25 + 0.5,
                                                                  1.0, 1.0]))
    spec = DATASETS["stoic"].spec
    model = build_model("dselect_k", spec.tasks, "resnet18", pretrained=False, in_channels=spec.in_channels)
    task = spec.tasks[0].name
    with torch.no_grad():                              # selector 0 -> expert 0b10 = 2, selector 1 -> 0b01 = 1
        model.z_logits[task].weight.zero_()
        model.z_logits[task].bias.copy_(torch.tensor([1.0, -1.0, -1.0, 1.0]))
        model.w_logits[task].weight.zero_()
        model.w_logits[task].bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    pooled = torch.randn(3, model.z_logits[task].in_features)
    torch.testing.assert_close(model.gate(task, pooled), torch.tensor([[0.0, 0.75, 0.25, 0.0]] * 3))
    with pytest.raises(ValueError, match="power of 2"):
        build_model("dselect_k", spec.tasks, "resnet18", in_channels=spec.in_channels, experts=3)
