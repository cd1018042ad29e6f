from types import SimpleNamespace

from tmlsr_ray.models import device
from tmlsr_ray.models.device import host_memory_bytes


def test_the_hosts_memory_is_its_containers_limit_where_that_is_lower(tmp_path, monkeypatch):
    monkeypatch.setattr(device.psutil, "virtual_memory", lambda: SimpleNamespace(total=64 << 30, available=1))
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    monkeypatch.setattr(device, "CGROUP_MEMORY_LIMITS", (v2, v1))
    assert host_memory_bytes() == 64 << 30  # neither file: the host's total
    v2.write_text("max\n")
    v1.write_text("9223372036854771712\n")  # v1's "no limit"
    assert host_memory_bytes() == 64 << 30
    v2.write_text(f"{8 << 30}\n")
    assert host_memory_bytes() == 8 << 30
