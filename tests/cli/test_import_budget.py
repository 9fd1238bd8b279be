"""Each CLI verb imports only what it uses (issue 16).

A verb's import set is a list, not a time: the test runs the real entry point in a fresh
interpreter, collects the ``explorer`` modules and the heavier standard and third-party
modules it loaded, and fails when one appears that the verb's budget does not allow.
Timings drift with the machine; a module that slipped in does not. When a verb really
needs a new module, add it to its budget here, with the reason in the commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT

# Modules outside explorer worth watching: each is costly to import or a sign of a layer
# the verb should not reach (a GUI toolkit, an HTTP client, the database).
WATCHED = (
    "PySide6",
    "watchdog",
    "sqlite3",
    "http.client",
    "urllib.request",
    "ssl",
    "email",
    "ctypes",
    "argparse",
    "json",
    "tarfile",
    "zstandard",
    "xxhash",
    "secrets",
    "hashlib",
    "threading",
    "subprocess",
)

DRIVER = """
import os, sys
from explorer.__main__ import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
watched = {watched!r}
mods = sorted(m for m in sys.modules if m == "explorer" or m.startswith("explorer.") or m in watched)
import json  # only now: the driver's own imports must not count
sys.stdout.flush()
os.write({fd}, json.dumps({{"code": code, "modules": mods}}).encode())
os._exit(0)
"""

# Always there for any verb: the entry point and argv (``--version`` stops there).
CORE = {"explorer", "explorer.__main__", "explorer.cli", "explorer.cli.argv"}
# A verb's parser and the error root; the formatting helpers every verb module shares.
CLI = CORE | {
    "explorer.cli.main",
    "explorer.cli.format",
    "explorer.cli.each",
    "explorer.errors",
    "explorer.timestamps",
    "argparse",
    "json",
    "threading",
}
# The store, opened: what every verb that reads the store may load.
STORE = CLI | {
    "explorer.api",
    "explorer.api.app",
    "explorer.api.archives",
    "explorer.api.context",
    "explorer.bulk",
    "explorer.digest",
    "explorer.fsutil",
    "explorer.holds",
    "explorer.store",
    "explorer.store.store",
    "explorer.store.metadata",
    "explorer.store.images",
    "explorer.store.layers",
    "explorer.store.containers",
    "explorer.store.volumes",
    "explorer.store.locks",
    "explorer.store.marks",
    "explorer.store.reference",
    "explorer.store.index",
    "sqlite3",
}
IMAGES = STORE | {"explorer.cli.image_cmds", "explorer.api.images", "explorer.api.model", "explorer.store.union"}
CONTAINERS = STORE | {
    "explorer.cli.container_cmds",
    "explorer.api.containers",
    "explorer.api.isolation",
    "explorer.api.mounts",
    "explorer.api.volumes",
    "explorer.store.export",
    "explorer.runtime",
}


@dataclass(frozen=True)
class Verb:
    """One command line and the modules it may load (exact names or ``prefix.*``)."""

    name: str
    argv: tuple[str, ...]
    allowed: frozenset[str]
    needs_store: bool = False

    def allows(self, module: str) -> bool:
        if module in self.allowed:
            return True
        return any(a.endswith(".*") and module.startswith(a[:-1]) for a in self.allowed)


def _imports(argv: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run ``strata ARGV`` in a fresh interpreter; its exit code and what it imported."""
    read, write = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "STRATA_ROOT"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    code = DRIVER.format(watched=WATCHED, fd=write)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _out, err = proc.communicate(timeout=120)
    if not data:
        pytest.fail(f"strata {' '.join(argv)} reported nothing: {err.decode(errors='replace')[-1500:]}")
    report = json.loads(data)
    return int(report["code"] or 0), list(report["modules"])


def _budget(*parts: set[str] | frozenset[str] | str) -> frozenset[str]:
    out: set[str] = set()
    for part in parts:
        out |= {part} if isinstance(part, str) else set(part)
    return frozenset(out)


VERBS = [
    Verb("--version", ("--version",), _budget(CORE)),
    Verb(
        "--help",
        ("--help",),
        _budget(
            CLI,
            "explorer.cli.*",
            "explorer.builder",
            "explorer.builder.events",
            "explorer.registry",
            "explorer.registry.events",
            "explorer.store",
            "explorer.store.index",
            "explorer.store.reference",
            "explorer.digest",
        ),
    ),
    Verb(
        "build --help",
        ("build", "--help"),
        _budget(CLI, "explorer.cli.build_cmds", "explorer.builder", "explorer.builder.events"),
    ),
    Verb("images", ("images",), _budget(IMAGES), needs_store=True),
    Verb("history", ("history", "base:1"), _budget(IMAGES), needs_store=True),
    Verb(
        "volume ls",
        ("volume", "ls"),
        _budget(STORE, "explorer.cli.volume_cmds", "explorer.api.volumes"),
        needs_store=True,
    ),
    Verb("ps", ("ps", "-a"), _budget(CONTAINERS), needs_store=True),
    Verb(
        "system df",
        ("system", "df"),
        _budget(
            CONTAINERS,
            "explorer.cli.system_cmds",
            "explorer.api.system",
            "explorer.api.usage",
            "explorer.store.gc",
            "explorer.store.check",
            "explorer.store.quarantine",
            "hashlib",
        ),
        needs_store=True,
    ),
    # A build whose steps all come from the cache: the builder and the store, never the
    # container runtime (no RUN runs), the registry client (the base is local) or Qt.
    Verb(
        "build (cached)",
        ("build", "-q", "-t", "out:1", "CONTEXT"),
        _budget(
            STORE,
            "explorer.cli.build_cmds",
            "explorer.api.build",
            "explorer.builder.*",
            "explorer.builder",
            "explorer.store.*",
            "explorer.filelimits",
            "explorer.overlayfs",
            "explorer.runtime",
            "explorer.runtime.command",
            "hashlib",
            "secrets",
            "xxhash",
            "zstandard",
        ),
        needs_store=True,
    ),
    Verb(
        "run --rm",
        ("run", "--rm", "base:1", "true"),
        _budget(
            CONTAINERS,
            "explorer.runtime.*",
            "explorer.overlayfs",
            "ctypes",
            "subprocess",
        ),
        needs_store=True,
    ),
]

# Never loaded by any verb above, whatever the budgets say.
FORBIDDEN = ("PySide6", "watchdog", "explorer.gui", "http.client", "urllib.request", "ssl", "email")

DOCKERFILE = "FROM base:1\nWORKDIR /app\nCOPY a.txt .\nRUN cat a.txt > /app/copy\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> tuple[Path, Path]:
    """A store with the base image and one cached build of a small context."""
    require_userns()
    work = tmp_path_factory.mktemp("budget")
    root = work / "store"
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "a.txt").write_text("a\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    strata = [sys.executable, "-m", "explorer", "--root", str(root)]
    subprocess.run([*strata, "import", str(busybox_rootfs_tar), "base:1"], check=True, env=env, capture_output=True)
    subprocess.run([*strata, "build", "-q", "-t", "out:1", str(context)], check=True, env=env, capture_output=True)
    return root, context


@pytest.mark.parametrize("verb", VERBS, ids=[v.name for v in VERBS])
def test_a_verb_imports_only_its_budget(verb: Verb, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    argv = list(verb.argv)
    cwd = tmp_path
    if verb.needs_store:
        root, context = request.getfixturevalue("prepared")
        argv = ["--root", str(root), *[str(context) if a == "CONTEXT" else a for a in argv]]
    else:
        argv = ["--root", str(tmp_path / "no-store"), *argv]
    code, modules = _imports(argv, cwd)
    assert code == 0, f"strata {' '.join(argv)} exited {code}"
    over = sorted(m for m in modules if not verb.allows(m))
    assert not over, f"strata {verb.name} imports beyond its budget: {over}"
    banned = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN))
    assert not banned, f"strata {verb.name} imports {banned}"
    if not verb.needs_store:
        assert not (tmp_path / "no-store").exists(), f"strata {verb.name} created the store"


def test_the_budget_check_fails_on_a_module_that_slipped_in(tmp_path: Path) -> None:
    """The check is real: ``--version`` held to a budget without ``explorer.cli.argv``
    (which it does load) is over budget."""
    code, modules = _imports(["--version"], tmp_path)
    tight = Verb("tight", ("--version",), frozenset(CORE - {"explorer.cli.argv"}))
    assert code == 0
    assert [m for m in modules if not tight.allows(m)] == ["explorer.cli.argv"]
