"""A workaround for oneDNN's bf16 weight-gradient kernel on Intel AMX (issue 21).

Root cause, reproduced on an Intel Xeon (Sapphire Rapids, ``amx_bf16``), torch 2.14.1: under bf16 on the
CPU, the backward-weights of a convolution with a 3-wide kernel, stride 2 and padding 1 on an input **one
pixel wide** runs oneDNN's ``brgconv_bwd_w:avx10_1_512_amx`` and leaves the kernel's left and right taps
(``kw`` 0 and 2, the columns that only ever meet padding) unwritten: they keep whatever the buffer held --
zeros, garbage such as 3.6e33, or NaN/Inf, different on every call. The centre column is right, the data
gradient and the forward are right, fp32 and stride 1 are right, the input's height does not matter
(1x1, 2x1, 3x1, 4x1 all fail). ``tests/test_precision.py::test_amx_reproduction_of_the_onednn_kernel``
keeps the op-level case; docs/performance.md has the table.

In this suite the trigger is the image decoder's last stride-2 layer at 32 px (a 1x1 map) and, below
32 px, the encoder's last stage. Those convolutions run in fp32 when their input is one pixel wide under
CPU autocast (a width-1 map gains nothing from bf16); every other call stays in bf16.
"""
from __future__ import annotations

import torch
from torch import nn

# Switched off only by the reproduction test, which asserts the kernel is still wrong without it: when
# that test passes (strict xfail), oneDNN is fixed and this module can go.
WORKAROUND = True


def exposed(conv: nn.Conv2d) -> bool:
    """Can this convolution meet the bug: a kernel wider than 1 with a horizontal stride above 1."""
    return conv.kernel_size[1] > 1 and conv.stride[1] > 1


class GuardedConv2d(nn.Conv2d):
    """``nn.Conv2d`` that leaves bf16 autocast for inputs one pixel wide (same parameters, same state)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if WORKAROUND and x.shape[-1] == 1 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def guard(net: nn.Module) -> nn.Module:
    """Make every exposed ``nn.Conv2d`` of ``net`` (ours and torchvision's) a ``GuardedConv2d`` in place;
    the class swap keeps parameters, buffers, hooks and state-dict keys as they are."""
    for module in net.modules():
        if type(module) is nn.Conv2d and exposed(module):
            module.__class__ = GuardedConv2d
    return net
