"""Run the runtime tests as the unprivileged user strata-test (run this as root).

    python tests/runtime/unpriv.py [pytest args…]

Rootless is Strata's promise, so the runtime suite must pass without root too. This
is the quick way to check just that; ``packaging/dev.sh test`` does the same for the
whole rootless subset. It creates the user (with a subordinate id range, as
dev.sh does) when missing, then runs pytest through ``runuser`` with the shared
venv's python, which strata-test can execute (a pyenv python under /root cannot).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "strata-test"
SUBID_RANGE = "100000:65536"
REPO = Path(__file__).resolve().parents[2]


def _python() -> str:
    for candidate in (os.environ.get("STRATA_VENV", ""), "/opt/strata-venv"):
        if candidate and os.access(os.path.join(candidate, "bin", "python"), os.X_OK):
            return os.path.join(candidate, "bin", "python")
    sys.exit("unpriv.py: no shared venv; run `bash packaging/dev.sh test` once or set STRATA_VENV")


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        text = Path(path).read_text() if os.path.exists(path) else ""
        if not any(line.startswith(USER + ":") for line in text.splitlines()):
            with open(path, "a") as fh:
                fh.write(f"{USER}:{SUBID_RANGE}\n")


def _readable_tree() -> tuple[Path, str | None]:
    """The checkout, or a copy of it when strata-test cannot read it (under /root)."""
    probe = subprocess.run(["runuser", "-u", USER, "--", "test", "-r", str(REPO / "pyproject.toml")])
    if probe.returncode == 0:
        return REPO, None
    holder = tempfile.mkdtemp(prefix="strata-unpriv-")
    tree = Path(holder) / REPO.name
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".mypy_cache", ".pytest_cache")
    shutil.copytree(REPO, tree, symlinks=True, ignore=ignore)
    os.chmod(holder, 0o755)
    subprocess.run(["chown", "-R", f"{USER}:", holder], check=True)
    return tree, holder


def run_pytest_as_test_user(args: list[str], capture: bool = False) -> subprocess.CompletedProcess[str]:
    """``pytest ARGS`` as strata-test, in a tree that user can read (run this as root)."""
    _ensure_user()
    python = _python()
    tree, holder = _readable_tree()
    home = subprocess.run(["getent", "passwd", USER], capture_output=True, text=True).stdout.split(":")[5]
    env = [
        f"HOME={home}", f"USER={USER}", f"LOGNAME={USER}", "LANG=C.UTF-8",
        f"PATH={os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        f"CI={os.environ.get('CI', '')}", "STRATA_TEST_UNPRIV=1",
        f"PYTHONPATH={tree}", "PYTHONDONTWRITEBYTECODE=1",
    ]  # fmt: skip
    command = ["runuser", "-u", USER, "--", "env", "-i", "-C", str(tree), *env,
               python, "-m", "pytest", *args, "-p", "no:cacheprovider"]  # fmt: skip
    try:
        return subprocess.run(command, capture_output=capture, text=True)
    finally:
        if holder:
            subprocess.run(["rm", "-rf", holder])


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        sys.exit("unpriv.py: run as root (it switches to the user strata-test)")
    paths = [a for a in argv if not a.startswith("-")] or ["tests/runtime"]
    options = [a for a in argv if a.startswith("-")]
    return run_pytest_as_test_user([*paths, "-m", "not docker", *options]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
