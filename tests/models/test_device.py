from types import SimpleNamespace

from tmlsr_ray.models import device
from tmlsr_ray.models.device import host_memory_bytes


def _machine(root, cgroup: str = "", limits=()):
    """A fake /proc and /sys under ``root``: this process in ``cgroup`` (/proc/self/cgroup's
    text), and each (path under /sys/fs/cgroup, its limit's text) in ``limits``."""
    (root / "proc" / "self").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "self" / "cgroup").write_text(cgroup)
    for path, limit in limits:
        (root / "sys" / "fs" / "cgroup" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "sys" / "fs" / "cgroup" / path).write_text(limit)
    return root


def test_the_hosts_memory_is_its_containers_limit_where_that_is_lower(tmp_path, monkeypatch):
    monkeypatch.setattr(device.psutil, "virtual_memory", lambda: SimpleNamespace(total=64 << 30, available=1))
    assert host_memory_bytes(tmp_path) == 64 << 30  # neither file: the host's total
    _machine(tmp_path, "0::/\n", [("memory.max", "max\n"),
                                  ("memory/memory.limit_in_bytes", "9223372036854771712\n")])  # v1's "no limit"
    assert host_memory_bytes(tmp_path) == 64 << 30
    _machine(tmp_path, limits=[("memory.max", f"{8 << 30}\n")])
    assert host_memory_bytes(tmp_path) == 8 << 30


def test_the_hosts_memory_is_the_limit_of_this_processs_own_cgroup_below_the_root(tmp_path, monkeypatch):
    """Only the root's files were read: a systemd unit's limit, or a container's that sees the
    host's hierarchy (no cgroup namespace), was missed and passes sized to the whole host."""
    monkeypatch.setattr(device.psutil, "virtual_memory", lambda: SimpleNamespace(total=64 << 30, available=1))
    v2 = _machine(tmp_path / "v2", "0::/system.slice/tmlsr.service\n",
                  [("memory.max", "max\n"), ("system.slice/memory.max", f"{16 << 30}\n"),
                   ("system.slice/tmlsr.service/memory.max", f"{8 << 30}\n")])
    v1 = _machine(tmp_path / "v1", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
                  [("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                   ("memory/docker/abc/memory.limit_in_bytes", f"{4 << 30}\n")])
    above = _machine(tmp_path / "above", "0::/pods/pod1/app\n", [("pods/pod1/memory.max", f"{2 << 30}\n")])
    assert [host_memory_bytes(root) for root in (v2, v1, above)] == [8 << 30, 4 << 30, 2 << 30]
