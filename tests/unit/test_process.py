"""Process sampler accounting over a procfs tree written by the test; target specs; service metrics."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchlab.metrics.sidecar.exposition import ServiceReading, SidecarCollector, Snapshot
from benchlab.metrics.sidecar.process import ProcessSampler, Target
from benchlab.metrics.sidecar.procfs import CLK_TCK, PAGE_SIZE, parse_stat, read_net_dev
from benchlab.metrics.sidecar.spec import parse_target, target_from_flag

OLD = 1
"""Start time (ticks after boot) of processes that were running before the sampler started."""
NEWBORN = 10**12
"""Start time later than any tick: the process was born after the previous tick."""


class FakeProc:
    """A procfs tree with the files the sampler reads, edited between ticks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[int, dict[str, object]] = {}
        (root / "net").mkdir(parents=True)
        self.net_dev(0, 0)

    def add(
        self,
        pid: int,
        *,
        ppid: int = 1,
        comm: str = "app",
        cmdline: str = "app",
        start: int = OLD,
        cpu: tuple[int, int, int, int] = (0, 0, 0, 0),
        threads: int = 1,
        rss_pages: int = 10,
        io: tuple[int, int] = (0, 0),
        fds: int = 3,
        state: str = "S",
    ) -> None:
        self.procs[pid] = dict(
            ppid=ppid, comm=comm, start=start, cpu=cpu, threads=threads, rss_pages=rss_pages, io=io, state=state
        )
        d = self.root / str(pid)
        (d / "fd").mkdir(parents=True)
        for i in range(fds):
            (d / "fd" / str(i)).touch()
        (d / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
        (d / "ns").mkdir()
        (d / "net").mkdir()
        os.link(self.root / "net" / "ns", d / "ns" / "net")  # one shared namespace: same inode
        os.link(self.root / "net" / "dev", d / "net" / "dev")
        self._write(pid)

    def set(self, pid: int, **changes: object) -> None:
        self.procs[pid].update(changes)
        self._write(pid)

    def remove(self, pid: int) -> None:
        del self.procs[pid]
        for path in sorted((self.root / str(pid)).rglob("*"), key=lambda p: -len(p.parts)):
            path.rmdir() if path.is_dir() else path.unlink()
        (self.root / str(pid)).rmdir()

    def net_dev(self, rx: int, tx: int) -> None:
        (self.root / "net" / "ns").touch()
        (self.root / "net" / "dev").write_text(
            "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
            f"    lo: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0\n  eth0: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        )

    def _write(self, pid: int) -> None:
        p = self.procs[pid]
        u, s, cu, cs = p["cpu"]  # type: ignore[misc]
        (self.root / str(pid) / "stat").write_text(
            f"{pid} ({p['comm']}) {p['state']} {p['ppid']} {pid} {pid} 0 -1 0 0 0 0 0 {u} {s} {cu} {cs} 20 0 "
            f"{p['threads']} 0 {p['start']} 1000000 {p['rss_pages']} 18446744073709551615 0 0 0 0 0 0 0\n"
        )
        r, w = p["io"]  # type: ignore[misc]
        (self.root / str(pid) / "io").write_text(
            f"rchar: 1\nwchar: 1\nsyscr: 1\nsyscw: 1\nread_bytes: {r}\nwrite_bytes: {w}\ncancelled_write_bytes: 0\n"
        )


class Clock:
    """Monotonic time the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


def sampler(proc: FakeProc, clock: Clock, *targets: Target, cgroup_root: str = "/nonexistent") -> ProcessSampler:
    return ProcessSampler(targets=targets, proc_root=str(proc.root), cgroup_root=cgroup_root, clock=clock)


def test_a_tree_is_summed_and_rates_come_from_deltas(proc: FakeProc) -> None:
    proc.add(100, cpu=(50, 10, 0, 0), threads=4, rss_pages=100, io=(1000, 2000), fds=5)
    proc.add(101, ppid=100, threads=2, rss_pages=50, fds=4)
    proc.add(102, ppid=101, rss_pages=25, fds=3)
    proc.add(200, cpu=(999, 0, 0, 0), rss_pages=1000)  # not ours
    clock = Clock()
    s = sampler(proc, clock, Target(service="api", pid=100))
    first = s.sample()[0]
    assert (first.process_count, first.threads, first.open_fds) == (3, 7, 12)
    assert first.rss_bytes == 175 * PAGE_SIZE
    assert first.cpu_percent is None and first.disk_write_bps is None and first.net_rx_bps is None

    clock.now += 2.0
    proc.set(100, cpu=(50 + CLK_TCK, 10, 0, 0), io=(1000 + 4096, 2000 + 8192))
    proc.set(102, cpu=(CLK_TCK // 2, CLK_TCK // 2, 0, 0))
    proc.set(200, cpu=(999 + 10 * CLK_TCK, 0, 0, 0))
    proc.net_dev(rx=3000, tx=1000)  # first reading was 0/0 for the same namespace
    second = s.sample()[0]
    assert second.cpu_percent == pytest.approx(100.0)  # 2 CPU-seconds over 2 s, the stranger's excluded
    assert second.cpu_percent_total == pytest.approx(100.0 / (os.cpu_count() or 1))
    assert second.disk_read_bps == pytest.approx(2048.0) and second.disk_write_bps == pytest.approx(4096.0)
    assert second.net_rx_bps == pytest.approx(1500.0) and second.net_tx_bps == pytest.approx(500.0)
    assert second.cpu_seconds == pytest.approx(2.0) and second.disk_write_bytes == 8192
    assert second.restarts == 0


def test_newborns_count_whole_and_a_reaped_child_is_not_counted_twice(proc: FakeProc) -> None:
    proc.add(100, cpu=(10, 0, 0, 0))
    clock = Clock()
    s = sampler(proc, clock, Target(service="api", pid=100))
    s.sample()
    clock.now += 1.0
    proc.add(101, ppid=100, start=NEWBORN, cpu=(30, 20, 0, 0))  # born since the last tick: 50 ticks so far
    assert s.sample()[0].cpu_seconds == pytest.approx(50 / CLK_TCK)
    clock.now += 1.0
    proc.remove(101)  # it ran 10 more ticks, exited, and its parent reaped it: cutime += 60
    proc.set(100, cpu=(15, 0, 60, 0))
    reading = s.sample()[0]
    assert reading.cpu_seconds == pytest.approx((50 + 10 + 5) / CLK_TCK)
    assert reading.process_count == 1


def test_a_replaced_process_is_a_restart_and_each_change_is_logged_once(
    proc: FakeProc, caplog: pytest.LogCaptureFixture
) -> None:
    proc.add(100, comm="python3", cmdline="python3 worker.py --queue jobs")
    proc.add(150, comm="python3", cmdline="python3 other.py")
    clock = Clock()
    s = sampler(proc, clock, Target(service="worker", pattern=r"worker\.py"))
    caplog.set_level(logging.INFO, logger="benchlab.metrics.sidecar.process")
    assert s.sample()[0].process_count == 1
    proc.remove(100)
    for _ in range(3):
        clock.now += 1.0
        gone = s.sample()[0]
        assert (gone.process_count, gone.restarts, gone.cpu_percent) == (0, 0, 0.0)
    clock.now += 1.0
    proc.add(300, comm="python3", cmdline="python3 worker.py --queue jobs", start=NEWBORN)
    back = s.sample()[0]
    assert (back.process_count, back.restarts) == (1, 1)
    clock.now += 1.0
    proc.add(301, ppid=300, comm="python3", cmdline="python3 worker.py --child", start=NEWBORN)  # a child
    assert s.sample()[0].restarts == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("no process matches process:worker" in m for m in messages) == 1
    assert sum("restarted" in m for m in messages) == 1
    assert sum("watching pid" in m for m in messages) == 1  # the first sighting; the restart has its own line


def test_zombies_are_not_live_processes(proc: FakeProc) -> None:
    proc.add(100)
    proc.add(101, ppid=100, state="Z", rss_pages=0, fds=0)
    reading = sampler(proc, Clock(), Target(service="api", pid=100)).sample()[0]
    assert reading.process_count == 1


def test_cgroup_target_finds_the_v1_hierarchy(proc: FakeProc, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cgroups = tmp_path / "cgroup"
    (cgroups / "pids" / "docker" / "abc").mkdir(parents=True)
    (cgroups / "pids" / "docker" / "abc" / "cgroup.procs").write_text("100\n101\n999\n")  # 999 is gone
    proc.add(100)
    proc.add(101, ppid=100)
    proc.add(102)
    s = sampler(
        proc,
        Clock(),
        Target(service="box", cgroup="/docker/abc/"),
        Target(service="none", cgroup="nope"),
        cgroup_root=str(cgroups),
    )
    caplog.set_level(logging.WARNING, logger="benchlab.metrics.sidecar.process")
    box, none = s.sample()
    assert (box.service, box.process_count, none.process_count) == ("box", 2, 0)
    s.sample()
    assert sum("no cgroup.procs for 'nope'" in r.getMessage() for r in caplog.records) == 1


def test_stat_lines_with_odd_names_and_net_dev_pages_parse() -> None:
    raw = b"42 (a) b (c)) R 7 42 42 0 -1 0 0 0 0 0 11 22 33 44 20 0 5 0 777 1000 88 0 0 0 0 0 0 0 0\n"
    stat = parse_stat(raw)
    assert (stat.ppid, stat.comm, stat.state, stat.start, stat.cpu, stat.threads, stat.rss_pages) == (
        7,
        "a) b (c)",
        "R",
        777,
        110,
        5,
        88,
    )
    page = (
        "Inter-| Receive | Transmit\n face |bytes|bytes\n"
        "    lo: 100 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n  eth0: 7 1 0 0 0 0 0 0 3 1 0 0 0 0 0 0\n"
    )
    assert read_net_dev(page) == (107, 53)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pid:4242", Target(service="pid-4242", pid=4242)),
        ("api=port:8000", Target(service="api", port=8000)),
        ("process:gunicorn: master", Target(service="gunicorn: master", pattern="gunicorn: master")),
        ("w=process:a=b", Target(service="w", pattern="a=b")),
        (
            "cgroup:system.slice/docker-1.scope/",
            Target(service="docker-1.scope", cgroup="system.slice/docker-1.scope/"),
        ),
    ],
)
def test_target_specs(spec: str, expected: Target) -> None:
    assert parse_target(spec) == expected


def test_target_flags_take_the_service_flag_unless_named() -> None:
    assert target_from_flag("pid", "12", service="api") == Target(service="api", pid=12)
    assert target_from_flag("port", "web=80", service="api") == Target(service="web", port=80)
    assert target_from_flag("process", r"celery\s+worker") == Target(
        service=r"celery\s+worker", pattern=r"celery\s+worker"
    )


@pytest.mark.parametrize("spec", ["pid:abc", "port:70000", "pid:0", "host:1", "process:(", "process:", "api=pid:"])
def test_bad_target_specs_raise_one_line_value_errors(spec: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_target(spec)
    assert "\n" not in str(err.value)


def test_service_metrics_use_base_units_and_counter_suffixes() -> None:
    reading = ServiceReading(
        service="api",
        process_count=3,
        restarts=2,
        cpu_percent=150.0,
        cpu_percent_total=75.0,
        rss_bytes=1 << 20,
        threads=9,
        open_fds=None,
        cpu_seconds=12.5,
        disk_write_bytes=4096.0,
    )
    registry = CollectorRegistry()
    registry.register(SidecarCollector(snapshot=lambda: Snapshot(services=(reading,), ticks=7)))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    svc = (("service", "api"),)
    assert samples[("benchlab_process_cpu_ratio", svc)] == 1.5
    assert samples[("benchlab_process_cpu_all_cores_ratio", svc)] == 0.75
    assert samples[("benchlab_process_resident_memory_bytes", svc)] == 1 << 20
    assert samples[("benchlab_process_instances", svc)] == 3
    assert samples[("benchlab_process_cpu_seconds_total", svc)] == 12.5
    assert samples[("benchlab_process_disk_written_bytes_total", svc)] == 4096
    assert samples[("benchlab_process_restarts_total", svc)] == 2
    assert samples[("benchlab_sidecar_ticks_total", ())] == 7
    assert ("benchlab_process_open_fds", svc) not in samples  # unknown, not zero
