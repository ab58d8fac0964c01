"""convlib.cpu: the processor's maker, model and flags, read from /proc/cpuinfo."""

from __future__ import annotations

import re

import pytest

from convlib import cpu

INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx2 avx512f avx512_fp16

processor\t: 1
vendor_id\t: SomethingElse
model name\t: not the first
flags\t\t: fpu
"""

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd sve
CPU implementer\t: 0x41

processor\t: 1
Features\t: fp
"""


def test_parse_reads_the_first_processor_only():
    fields = cpu.parse(INTEL)
    assert fields["vendor_id"] == "GenuineIntel"
    assert fields["model name"] == "Intel(R) Xeon(R) Processor"
    assert fields["flags"].split() == ["fpu", "sse4_2", "avx2", "avx512f", "avx512_fp16"]


@pytest.mark.parametrize("text, vendor, flags", [
    (INTEL, "GenuineIntel", {"fpu", "sse4_2", "avx2", "avx512f", "avx512_fp16"}),
    (ARM, None, {"fp", "asimd", "sve"}),  # ARM reports features and no vendor string
    ("", None, set()),
])
def test_vendor_and_flags_of_a_cpuinfo(text, vendor, flags, monkeypatch):
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: cpu.parse(text))
    monkeypatch.setattr(cpu.platform, "processor", lambda: "")
    assert cpu.vendor() == vendor
    assert cpu.flags() == flags


def test_vendor_elsewhere_comes_from_the_platform_name(monkeypatch):
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: {})
    monkeypatch.setattr(cpu.platform, "processor", lambda: "Intel64 Family 6 Model 143, GenuineIntel")
    assert cpu.vendor() == "GenuineIntel"
    assert cpu.model() == "Intel64 Family 6 Model 143, GenuineIntel"


def test_this_machine_agrees_with_its_proc_cpuinfo():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    vendors = re.findall(r"^vendor_id\s*:\s*(.*)$", text, re.M)
    flag_lines = re.findall(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.M)
    if vendors:  # without one the platform's name is asked (test above)
        assert cpu.vendor() == vendors[0].strip()
    assert cpu.flags() == (set(flag_lines[0].split()) if flag_lines else set())
