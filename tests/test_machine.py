"""The machine names that benchmarks print and cache keys hold (stem_restore.machine)."""
from stem_restore import machine


def test_the_cpu_model_is_the_kernels_name_for_it():
    name = machine.cpu_model()
    with open("/proc/cpuinfo") as fh:
        listed = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    assert name and (name == listed[0] if listed else True)


def test_without_nvidia_smi_a_gpu_is_unknown_not_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert machine.gpu_model(0) == "unknown"
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.1'\n")
    fake.chmod(0o755)
    assert machine.gpu_model(0) == "NVIDIA H200, 570.1"
