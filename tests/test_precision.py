"""Precision on any CPU (issue 21): which precision a machine trains in, finite gradients for every
architecture in every profile's precision, the gradient guard, and the AMX reproduction."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import models.blocks as blocks
from benchmark.experiment.precision import cpu_info, describe_cpu, resolve_precision
from benchmark.experiment.profiles import PROFILES, get_profile
from benchmark.training.losses import make_loss
from benchmark.training.loop import NonFiniteGradient, train_network
from data import DATASETS
from models.catalog import METHODS
from models.registry import build_model

AMD_ZEN3 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
XEON_AMX = ("model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 "
            "amx_tile amx_int8\n")
EPYC_BF16 = "model name\t: AMD EPYC 9B14\nflags\t\t: avx2 avx512f avx512_bf16\n"


def test_cpu_info_reads_the_model_and_the_bf16_flags():
    amd, xeon, genoa = cpu_info(AMD_ZEN3), cpu_info(XEON_AMX), cpu_info(EPYC_BF16)
    assert amd == {"model": "AMD EPYC 7B13", "flags": ["avx2"], "native_bf16": False}
    assert xeon["flags"] == ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512f"]
    assert xeon["native_bf16"] and genoa["native_bf16"]
    assert describe_cpu(amd) == "AMD EPYC 7B13 (flags: avx2; native bf16: no)"


def test_a_cpu_without_bf16_trains_a_bf16_profile_in_fp32_and_says_so():
    quick = get_profile("quick")
    resolved, note = resolve_precision(quick, ("cpu",), explicit_amp=False, info=cpu_info(AMD_ZEN3))
    assert not resolved.amp and resolved.label == "quick+amp=False" and resolved.epochs == quick.epochs
    assert "AMD EPYC 7B13" in note and "fp32" in note and "--set amp=true" in note
    kept, warn = resolve_precision(quick, ("cpu",), explicit_amp=True, info=cpu_info(AMD_ZEN3))
    assert kept is quick and "14-30x slower" in warn
    for info in (cpu_info(XEON_AMX), cpu_info(EPYC_BF16)):
        assert resolve_precision(quick, ("cpu",), False, info) == (quick, None)
    assert resolve_precision(quick, ("cuda:0",), False, cpu_info(AMD_ZEN3)) == (quick, None)
    smoke = get_profile("smoke")
    assert resolve_precision(smoke, ("cpu",), False, cpu_info(AMD_ZEN3)) == (smoke, None)


def test_the_cli_prints_the_precision_it_chose(monkeypatch, capsys, tmp_path):
    import benchmark.experiment.precision as precision
    from benchmark.experiment.cli import main

    monkeypatch.setattr(precision, "cpu_info", lambda cpuinfo=None: cpu_info(AMD_ZEN3))
    assert main(["--dataset", "stoic", "--method", "hps", "--seeds", "0", "--data", "synthetic", "--dry-run",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trains in fp32 as quick+amp=False" in out and "profile quick+amp=False" in out
    assert "amp=False" in out.split("settings: ")[1]


PRECISIONS = sorted({p.amp for p in PROFILES.values()})  # every profile's precision: fp32 and bf16


@pytest.mark.parametrize("amp", PRECISIONS, ids=lambda a: "bf16" if a else "fp32")
@pytest.mark.parametrize("method", list(METHODS))
def test_every_architecture_takes_a_step_with_finite_gradients(method, amp):
    """HAM10000's pair has both decoders (pixel and image); at the smoke size (32 px) the encoder's
    last stage and the image decoder's last layer see 1x1 maps, where AMX's bf16 failed."""
    data = DATASETS["ham10000"].synthetic(0, 4, 2, 2, 32)
    spec, split = data.spec, data.splits["train"]
    torch.manual_seed(0)
    net = build_model(method, spec.tasks, "resnet18", in_channels=spec.in_channels)
    x = torch.from_numpy(split.image[:2])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = net(x)
        loss = sum(make_loss(t)(out[t.name].float(), torch.from_numpy(split.targets[t.name][:2])) for t in spec.tasks)
    loss.backward()
    bad = [n for n, p in net.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients under {'bf16' if amp else 'fp32'}: {bad[:5]}"
    assert all(p.grad.dtype == torch.float32 for p in net.parameters() if p.grad is not None)


def test_a_non_finite_gradient_stops_a_cell_with_one_line_naming_parameter_precision_and_device():
    data = DATASETS["stoic"].synthetic(0, 8, 4, 4, 32)
    spec = data.spec
    net = build_model("hps", spec.tasks, "resnet18", in_channels=spec.in_channels)
    weight = dict(net.named_parameters())["decoders.covid.fc.weight"]
    weight.register_hook(lambda g: torch.full_like(g, float("nan")))
    before = weight.detach().clone()
    with pytest.raises(NonFiniteGradient) as err:
        train_network(net, spec.tasks, data, get_profile("smoke"), 4, 0)
    message = str(err.value)
    assert message == ("stoic: the gradient of decoders.covid.fc.weight is not finite at step 0 of epoch 0 "
                       "(fp32 on cpu); check the data and lower the learning rate")
    assert "\n" not in message
    assert torch.equal(weight.detach(), before)      # stopped before the optimiser wrote it
    amp = dataclasses.replace(get_profile("smoke"), amp=True)
    net = build_model("hps", spec.tasks, "resnet18", in_channels=spec.in_channels)
    dict(net.named_parameters())["decoders.covid.fc.weight"].register_hook(lambda g: g * float("inf"))
    with pytest.raises(NonFiniteGradient, match=r"\(bf16 autocast on cpu\); retry with --set amp=false"):
        train_network(net, spec.tasks, data, amp, 4, 0)


def _has_amx() -> bool:
    return "amx_bf16" in cpu_info()["flags"]


@pytest.mark.skipif(not _has_amx(), reason="the reproduction needs an Intel CPU with AMX-BF16 (issue 21)")
@pytest.mark.xfail(strict=True, reason="oneDNN's bf16 backward-weights on a 1x1 map with AMX: when this "
                                       "passes, blocks.FP32_ON_SINGLE_PIXEL can go")
def test_amx_reproduction_without_the_workaround(monkeypatch):
    """Issue 21's minimal case: HPS for STOIC, ResNet-18, batch 16 of 32 px, one bf16 backward:
    ``decoders.*.last_down.0.weight`` non-finite on AMX with the layer in bf16."""
    monkeypatch.setattr(blocks, "FP32_ON_SINGLE_PIXEL", False)
    spec = DATASETS["stoic"].spec
    torch.manual_seed(0)
    net = build_model("hps", spec.tasks, "resnet18", in_channels=spec.in_channels)
    x = torch.randn(16, spec.in_channels, 32, 32)
    y = torch.from_numpy(np.arange(16) % 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
        loss = sum(make_loss(t)(out[t.name].float(), y) for t in spec.tasks)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
