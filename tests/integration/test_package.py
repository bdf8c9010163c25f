"""`pip install .` into a fresh venv installs one import namespace, `benchlab`, and nothing generic."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_install_puts_only_benchlab_at_top_level(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    build = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(build)], check=True)
    _copy_worktree(build)
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", str(build)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    top = {p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))}
    assert "benchlab" in top
    assert "metrics" not in top and "runners" not in top
    pkg = site / "benchlab"
    for module in ("runners/cli.py", "metrics/store/database.py", "metrics/sidecar/daemon.py", "runners/analysis"):
        assert (pkg / module).exists(), module
    probe = "import importlib.util as u; print(u.find_spec('metrics'), u.find_spec('runners'))"
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split() == ["None", "None"]
    entry = next((site.parent.parent.parent / "bin").glob("benchlab"))
    assert "benchlab.runners.cli" in entry.read_text()


def _copy_worktree(dest: Path) -> None:
    """The working tree's files over the clone, so the test sees uncommitted changes too."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
