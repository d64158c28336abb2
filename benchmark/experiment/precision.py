"""Which precision a cell trains in on this machine: bf16 autocast only where the hardware has it.

The quick, realcpu and paper profiles ask for bf16 autocast (``amp``). On a CPU with native bf16
(AVX-512 BF16 or AMX-BF16) a bf16 step is 1.5-1.6x faster than fp32; on a CPU without it (AVX2
only, e.g. AMD EPYC Zen 3) oneDNN has no bf16 kernels and falls back to reference code, and the
same step is 14-30x *slower* than fp32 (measured: docs/performance.md, "CPUs without bf16"). So a
profile's ``amp`` on such a CPU resolves to fp32 with one line saying so; the change is an
override (``quick+amp=False``), so it names the results folder, the config hash and the report's
caption, and never mixes with bf16 results. ``--set amp=true`` keeps bf16 anyway.

Reads ``/proc/cpuinfo`` (no torch import: the CLI stays light until something trains).
"""
from __future__ import annotations

import platform
from pathlib import Path

from benchmark.experiment.profiles import Profile, with_overrides

BF16_FLAGS = ("avx512_bf16", "amx_bf16")   # native bf16 arithmetic on x86 CPUs
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU's model name and the flags that decide bf16 speed (from ``/proc/cpuinfo``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return {"model": model, "flags": sorted(f for f in REPORTED_FLAGS if f in flags),
            "native_bf16": any(f in flags for f in BF16_FLAGS)}


def describe_cpu(info: dict | None = None) -> str:
    """One line: model, the bf16-relevant flags, and whether bf16 is native."""
    info = info or cpu_info()
    flags = " ".join(info["flags"]) or "none of " + " ".join(REPORTED_FLAGS)
    return f"{info['model']} (flags: {flags}; native bf16: {'yes' if info['native_bf16'] else 'no'})"


def resolve_precision(profile: Profile, devices: tuple[str, ...], explicit_amp: bool,
                      info: dict | None = None) -> tuple[Profile, str | None]:
    """The profile to run on ``devices`` and a one-line note when its precision was changed (or
    kept against advice). Only CPUs are judged; a GPU keeps the profile's precision."""
    if not profile.amp or not any(d == "cpu" for d in devices):
        return profile, None
    info = info or cpu_info()
    if info["native_bf16"]:
        return profile, None
    cpu = describe_cpu(info)
    if explicit_amp:
        return profile, (f"note: amp=true on {cpu}: bf16 is emulated on this CPU and a training step is "
                         f"14-30x slower than in fp32 (docs/performance.md)")
    resolved = with_overrides(profile, {"amp": "false"})
    return resolved, (f"note: {cpu}: bf16 would be emulated here (14-30x slower per step, measured), so profile "
                      f"{profile.label} trains in fp32 as {resolved.label}; --set amp=true forces bf16")
