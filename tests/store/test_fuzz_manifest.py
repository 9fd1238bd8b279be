"""Property-based fuzzing of the archive loader's manifest handling: arbitrary
manifest.json / index.json / oci-layout content is refused with a StrataError and the
store stays empty."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.api import Strata
from explorer.errors import StrataError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Config",
                    "Layers",
                    "RepoTags",
                    "manifests",
                    "digest",
                    "mediaType",
                    "size",
                    "config",
                    "layers",
                    "rootfs",
                    "diff_ids",
                    "imageLayoutVersion",
                    "annotations",
                    "platform",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.sampled_from(["docker", "oci"]), json_values, json_values)
def test_loader_refuses_garbage_manifests(tmp_path: Path, kind: str, first: object, second: object) -> None:
    if kind == "docker":
        files = {"manifest.json": json.dumps(first).encode(), "cfg.json": json.dumps(second).encode()}
    else:
        files = {"oci-layout": json.dumps(first).encode(), "index.json": json.dumps(second).encode()}
    path = tmp_path / "fuzz.tar"
    path.write_bytes(archive(files))
    app = Strata(tmp_path / "store")
    try:
        app.load(str(path))
    except StrataError:
        pass
    assert app.store.images.all() == [] or kind == "docker"
    assert [p for p in (tmp_path / "store" / "tmp").iterdir()] == []
    app.close()
