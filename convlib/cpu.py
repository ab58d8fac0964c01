"""What the processor is: its maker, model and instruction-set flags, as it reports them.

Two of convlib's choices depend on the processor rather than on torch alone: where its
matrix products go (:mod:`convlib.gemm`: MKL runs its AVX-512 code only on Intel's
processors) and whether torch computes a half-precision convolution with oneDNN
(:mod:`convlib.torchlike`: only where the processor has AVX-512 FP16 or AMX FP16
instructions). torch's own queries (``torch.backends.cpu.get_cpu_capability``,
``torch.cpu._is_*_supported``) tell neither, so they are read here from ``/proc/cpuinfo``
on Linux, and from the platform's processor name elsewhere (which has no flags).
"""

from __future__ import annotations

import functools
import platform
from typing import Optional

__all__ = ["vendor", "model", "flags", "parse"]

_VENDORS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls")


def parse(text: str) -> dict:
    """The fields (``key: value`` lines) of the first processor of a ``/proc/cpuinfo`` text;
    a blank line ends a processor's block."""
    fields: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields and not line.strip():
                break  # the first processor's block has ended
            continue
        fields.setdefault(key.strip(), value.strip())
    return fields


@functools.cache
def _cpuinfo() -> dict:
    try:
        with open("/proc/cpuinfo") as f:
            return parse(f.read())
    except OSError:
        return {}


def vendor() -> Optional[str]:
    """The maker's string (``"GenuineIntel"``, ``"AuthenticAMD"``, ...), or ``None`` where
    the processor does not say (ARM processors report none)."""
    found = _cpuinfo().get("vendor_id")
    if found:
        return found
    name = platform.processor()
    return next((v for v in _VENDORS if v in name), None)


def model() -> str:
    """The model name, e.g. ``"AMD EPYC 7B13"``; the platform's processor or machine name
    where ``/proc/cpuinfo`` has none."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def flags() -> frozenset:
    """The instruction-set flags (``"avx2"``, ``"avx512f"``, ``"avx512_fp16"``, ...; on ARM
    the features, ``"asimd"``, ``"sve"``, ...); empty where they cannot be read."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())
