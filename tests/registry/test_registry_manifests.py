"""Manifests are untrusted JSON: whatever shape arrives, the answer is a parsed manifest
or one RegistryProtocolError, never a crash."""

from __future__ import annotations

import json
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from explorer.errors import RegistryProtocolError
from explorer.registry.manifests import ImageIndex, ImageManifest, parse
from explorer.registry.pull import _created_by

DIGEST = "sha256:" + "a" * 64
GOOD: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 10},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST, "size": 5}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def test_a_good_manifest_and_index_parse() -> None:
    manifest = parse(json.dumps(GOOD).encode(), "", "here")
    assert isinstance(manifest, ImageManifest) and manifest.layers[0].size == 5
    index = parse(json.dumps({"manifests": [{"digest": DIGEST, "size": 1, "platform": "x"}]}).encode(), "", "here")
    assert isinstance(index, ImageIndex)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests"]), value=json_values)
def test_any_field_of_any_shape_is_parsed_or_refused(key: str, value: object) -> None:
    doc = dict(GOOD)
    doc[key] = value
    try:
        parse(json.dumps(doc).encode(), "", "here")
    except RegistryProtocolError as e:
        assert "\n" not in str(e)


@settings(max_examples=100, deadline=None)
@given(value=json_values)
def test_any_json_document_is_parsed_or_refused(value: object) -> None:
    try:
        parse(json.dumps(value).encode(), "application/json", "here")
    except RegistryProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(history=json_values)
def test_a_malformed_history_costs_only_the_labels(history: object) -> None:
    labels = _created_by(json.dumps({"history": history}).encode())
    assert all(isinstance(label, str) for label in labels)
