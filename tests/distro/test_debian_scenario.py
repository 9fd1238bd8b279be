"""The scenario Strata exists for, on a real Debian image: apt-get in RUN, a flask app,
a second image that shares the trunk, and containers answering on loopback.

Runs in both passes (root, and rootless as strata-test inside the store's namespace).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.distro.conftest import BASE, step_statuses, strata_json
from tests.fixtures import run_strata

APP = """\
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "{text}\\n"
"""

DOCKERFILE = f"""\
FROM {BASE}
RUN apt-get update && apt-get -y install python3
RUN apt-get -y install python3-flask
COPY {{copy}} /opt/source-code/
ENTRYPOINT python3 -m flask --app /opt/source-code/app.py run --host 127.0.0.1 --port $PORT
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, deadline: float = 60.0) -> str:
    end = time.monotonic() + deadline
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                return reply.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
            time.sleep(0.3)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port}: {last}")


def context(tmp_path: Path, name: str, text: str, copy: str) -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "app.py").write_text(APP.format(text=text))
    (ctx / "README").write_text(f"{name}\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(copy=copy))
    return ctx


@pytest.mark.timeout(1200)
def test_two_flask_images_share_their_apt_trunk_and_answer_on_loopback(deb_store: Path, tmp_path: Path) -> None:
    one = context(tmp_path, "one", "one", ".")
    two = context(tmp_path, "two", "two", "app.py")

    first = step_statuses(strata_json("build", "--progress", "json", "-t", "flask:one", one, root=deb_store))
    assert [status for _ins, status in first[1:]] == ["done", "done", "done", "done"]
    second = step_statuses(strata_json("build", "--progress", "json", "-t", "flask:two", two, root=deb_store))
    # FROM is not a vertex of its own when cached; the two RUNs come from the cache
    assert [s for ins, s in second if ins.startswith("RUN")] == ["cached", "cached"]
    assert [s for ins, s in second if ins.startswith("COPY")] == ["done"]

    names = {}
    for tag, text in (("flask:one", "one"), ("flask:two", "two")):
        port = free_port()
        cid = run_strata("run", "-d", "-e", f"PORT={port}", tag, root=deb_store, check=True).stdout.strip()
        names[tag] = cid
        assert http_get(port) == f"{text}\n"
        ps = run_strata("ps", root=deb_store, check=True).stdout
        assert cid[:12] in ps
        run_strata("stop", cid, root=deb_store, check=True)
        logs = run_strata("logs", cid, root=deb_store, check=True)
        assert f"Running on http://127.0.0.1:{port}" in logs.stdout + logs.stderr
        diff = run_strata("diff", cid, root=deb_store, check=True).stdout.splitlines()
        assert "A /opt/source-code/__pycache__" in diff
        run_strata("rm", cid, root=deb_store, check=True)
        assert cid[:12] not in run_strata("ps", "-a", root=deb_store, check=True).stdout
