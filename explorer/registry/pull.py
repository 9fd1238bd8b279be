"""``strata pull``: a registry image into the store, layer by layer, verified as it streams.

Each missing layer's blob is streamed straight into the layer extractor, which hashes the
compressed bytes (the blob digest) and the tar (the diff id) as they pass; nothing is
written to a temporary file. Up to ``CONCURRENCY`` layers download at once, like Docker;
each is extracted into its own staging directory and committed in order, because a
layer's identity (its chain id) depends on its parent.

What is left after a failure:

* a layer is either complete and verified or gone (staging is removed, and a crash's
  staging is removed by the next ``Store`` open);
* if the connection broke or stalled (nothing for ``STRATA_REGISTRY_TIMEOUT`` seconds) or
  the user cancelled, complete layers stay, so the next pull fetches only the rest
  ("resumable enough");
* if the registry sent wrong content (digest or size mismatch, a bad tar, bad JSON), the
  layers this pull created are removed again: nothing from a bad image stays;
* the image and its tag are recorded only when every layer is in place.

A cancel or Ctrl-C must not wait for a slow registry: the downloads in flight are shut
down at once (``Transport.interrupt``), each worker removes its staging and the pull ends within
moments, with the store as consistent as after any other failure.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import jsoninput
from ..digest import DIGEST_RE, chain_ids
from ..errors import (
    Cancelled,
    DigestMismatch,
    ImageNotFound,
    RegistryError,
    RegistryProtocolError,
    RegistryUnreachable,
    SizeMismatch,
    StrataError,
    TransferInterrupted,
)
from ..fsutil import guard_enospc
from ..store import reference
from ..store.archive import MT_OCI_LAYER, select_platform
from ..store.extract import extract_layer
from ..store.images import Image
from ..store.reference import Reference
from . import events
from .client import RegistryClient
from .events import Aborted, Meter, Progress, Reporter
from .manifests import Descriptor, ImageIndex, ImageManifest
from .settings import RegistrySettings
from .transport import Response, Stalled, Transport

if TYPE_CHECKING:
    from ..store.store import Store

CONCURRENCY = 3
READ = 1 << 20
CANCEL_POLL_S = 0.2  # how often the waiting thread looks at ``cancel``


@dataclass(frozen=True)
class PullResult:
    image: Image
    name: str  # what was pulled, in docker's short form (``alpine:latest``)
    tag: str | None  # the name recorded in the store; None when pulled by digest or id
    digest: str  # the manifest digest the reference resolved to ("" for daemon imports)
    downloaded: int  # layers fetched
    up_to_date: bool  # the reference already named this image here

    @property
    def status(self) -> str:
        """Docker's last status line."""
        if self.up_to_date:
            return f"Status: Image is up to date for {self.name}"
        return f"Status: Downloaded newer image for {self.name}"


class _BlobStream:
    """A blob's body as ``extract_layer`` reads it: never beyond the descriptor's size,
    counted for progress, stopped by a cancel, and an early end reported as truncation."""

    def __init__(self, response: Response, desc: Descriptor, meter: Meter, reporter: Reporter, what: str) -> None:
        self.response = response
        self.size = desc.size
        self.meter = meter
        self.reporter = reporter
        self.what = what
        self.got = 0

    def read(self, n: int = -1) -> bytes:
        self.reporter.check()
        left = self.size - self.got
        if left <= 0:
            if self.response.read(1):
                raise RegistryProtocolError(f"{self.what} is larger than the {self.size} bytes its manifest gives")
            return b""
        try:
            data = self.response.read(min(n if n > 0 else READ, left))
        except Stalled as e:
            raise e.about(self.what, "pull again to resume") from None
        if not data:
            raise TransferInterrupted(self.response.host, self.what, self.got, self.size)
        self.got += len(data)
        self.meter.add(len(data))
        return data


def _diff_ids(config_raw: bytes, manifest: ImageManifest, where: str, platform: str | None) -> list[str]:
    try:
        config = jsoninput.loads(config_raw)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError):
        raise RegistryProtocolError(f"{where}: the image config has no rootfs.diff_ids") from None
    for d in diff_ids:
        if not DIGEST_RE.match(d):
            raise RegistryProtocolError(f"{where}: the image config names an invalid diff id {d!r}")
    if len(diff_ids) != len(manifest.layers):
        raise RegistryProtocolError(
            f"{where}: the manifest lists {len(manifest.layers)} layers but the config names {len(diff_ids)}"
        )
    if platform:
        want_os, _, arch = platform.partition("/")
        want_arch, _, want_variant = arch.partition("/")
        got = (config.get("os"), config.get("architecture"))
        if got != (want_os, want_arch) or (want_variant and config.get("variant") != want_variant):
            have = "/".join(str(p) for p in (*got, config.get("variant")) if p)
            raise RegistryError(f"{where} is for {have}, which does not match the requested platform {platform}")
    return diff_ids


def _created_by(config_raw: bytes) -> list[str]:
    """The instruction behind each layer, from the config's history (best effort: a
    malformed history only costs the labels)."""
    try:
        history = [h for h in jsoninput.loads(config_raw).get("history") or [] if not h.get("empty_layer")]
        return [str(h.get("created_by") or "") for h in history]
    except (AttributeError, TypeError, ValueError):
        return []


class _Puller:
    def __init__(self, store: Store, client: RegistryClient, ref: Reference, reporter: Reporter) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.reporter = reporter
        self.created: list[str] = []
        self._lock = threading.Lock()

    def resolve(self, platform: str | None) -> tuple[str, ImageManifest]:
        """The digest the reference names (an index's, if it is one) and the image
        manifest for this host's (or the requested) platform."""
        ref, client = self.ref, self.client
        found = client.get_manifest(self.repo, ref.digest or ref.tag or "latest", ref.familiar)
        if isinstance(found, ImageIndex):
            try:
                chosen = select_platform(found.manifests, platform)[0]
            except StrataError as e:
                raise RegistryError(f"{ref.familiar}: {e}") from None
            except (AttributeError, TypeError, KeyError):
                raise RegistryProtocolError(f"{ref.familiar}: the index has malformed platform entries") from None
            desc = Descriptor.parse(chosen, f"{ref.familiar}: the index entry")
            child = client.get_manifest(self.repo, desc.digest, f"{ref.familiar} ({desc.short})")
            if isinstance(child, ImageIndex):
                raise RegistryProtocolError(f"{ref.familiar}: an index inside an index is not supported")
            return found.digest, child
        return found.digest, found

    def fetch(self, desc: Descriptor, diff_id: str, created_by: str, after: Future[str] | str | None) -> str:
        """Download, verify and extract one layer, then commit it once its parent is in."""
        reporter = self.reporter
        short = desc.short
        what = f"layer {short}"
        meter = reporter.meter(short, events.DOWNLOADING, desc.size, "Downloading")
        reporter.check()
        layers = self.store.layers
        with layers.staging() as st, guard_enospc(str(st.path)):
            with self.client.open_blob(self.repo, desc, what) as response:
                stream = _BlobStream(response, desc, meter, reporter, what)
                result = extract_layer(
                    stream,  # type: ignore[arg-type]
                    str(st.diff),
                    tarsplit_path=str(st.tarsplit),
                    what=what,
                )
            if result.compressed_size != desc.size:
                raise SizeMismatch(what, desc.size, result.compressed_size)
            if result.compressed_digest != desc.digest:
                raise DigestMismatch(what, desc.digest, result.compressed_digest)
            if result.diff_id != diff_id:
                raise DigestMismatch(f"{what} (uncompressed, against the image config)", diff_id, result.diff_id)
            if isinstance(after, Future):
                try:
                    parent: str | None = after.result()
                except BaseException:
                    raise Aborted() from None
            else:
                parent = after
            reporter.check()
            layer = layers.commit(st, result.entries, result.diff_id, result.size, parent, created_by)
        if layer.id == st.id:
            with self._lock:
                self.created.append(layer.id)
        media = desc.media_type or (MT_OCI_LAYER if desc.digest == diff_id else "")
        layers.record_blob(layer.id, desc.digest, media, desc.size, f"{self.ref.domain}/{self.repo}")
        meter.done(events.COMPLETE, "Pull complete")
        return layer.id

    def layers(
        self, manifest: ImageManifest, diff_ids: list[str], created_by: list[str], concurrency: int
    ) -> tuple[str | None, int]:
        """Every layer in the store; returns the top layer's id and how many were fetched."""
        chains = chain_ids(diff_ids)
        have = -1
        base: str | None = None
        for i in range(len(chains) - 1, -1, -1):
            found = self.store.layers.by_chain(chains[i])
            if found is not None:
                have, base = i, found.id
                break
        for desc in manifest.layers[: have + 1]:
            self.reporter.emit(events.TransferEvent(desc.short, events.EXISTS, message="Already exists"))
        todo = list(range(have + 1, len(diff_ids)))
        if not todo:
            return base, 0
        for i in todo:
            desc = manifest.layers[i]
            self.reporter.emit(events.TransferEvent(desc.short, events.WAITING, 0, desc.size, message="Waiting"))
        futures: list[Future[str]] = []
        with ThreadPoolExecutor(
            max_workers=max(1, min(concurrency, len(todo))), thread_name_prefix="strata-pull"
        ) as pool:
            try:
                after: Future[str] | str | None = base
                for i in todo:
                    future = pool.submit(
                        self.fetch, manifest.layers[i], diff_ids[i], created_by[i] if i < len(created_by) else "", after
                    )
                    future.add_done_callback(self._stop_siblings_on_failure)
                    futures.append(future)
                    after = future
                cancel = self.reporter.cancel
                while wait(futures, timeout=None if cancel is None else CANCEL_POLL_S).not_done:
                    if cancel is not None and cancel.is_set():
                        self.client.transport.interrupt()
            except BaseException:
                # Ctrl-C (or a failure here): the workers stop at their next read, and
                # the reads they are blocked in end now, so leaving ``with`` takes moments.
                self.reporter.abort.set()
                self.client.transport.interrupt()
                raise
        if cancel is not None and cancel.is_set():
            raise Cancelled(self.reporter.what)
        failures = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in failures if not isinstance(e, Aborted)]
        if real:
            raise real[0]  # type: ignore[misc]
        if failures:
            raise RegistryError("pull aborted")
        return futures[-1].result(), len(todo)

    def _stop_siblings_on_failure(self, future: Future[str]) -> None:
        if future.exception() is not None:
            self.reporter.abort.set()

    def rollback(self) -> None:
        """Remove the layers this pull created, newest first, unless something uses them."""
        for layer_id in reversed(self.created):
            try:
                if not self.store.layers.users(layer_id):
                    self.store.layers.delete(layer_id)
            except StrataError:
                continue
        self.created.clear()


def pull(
    store: Store,
    text: str,
    *,
    platform: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    settings: RegistrySettings | None = None,
    transport: Transport | None = None,
    concurrency: int = CONCURRENCY,
) -> PullResult:
    """Pull ``text`` (``alpine``, ``host:5000/app:1``, ``name@sha256:…``) into ``store``."""
    ref = reference.parse(text)
    reporter = Reporter(progress, cancel, "pull")
    settings = settings or RegistrySettings.load()
    with RegistryClient(ref.domain, settings, transport=transport) as client:
        puller = _Puller(store, client, ref, reporter)
        reporter.info(f"{ref.tag if ref.digest is None else ref.digest}: Pulling from {_display_repo(ref)}")
        reporter.check()
        digest, manifest = puller.resolve(platform)
        where = f"{ref.familiar} ({manifest.digest[7:19]})"
        config_raw = client.get_blob_bytes(ref.path, manifest.config, f"config of {where}")
        diff_ids = _diff_ids(config_raw, manifest, where, platform)
        created_by = _created_by(config_raw)
        up_to_date = _already_named(store, ref, manifest.config.digest)
        try:
            top, fetched = puller.layers(manifest, diff_ids, created_by, concurrency)
            reporter.check()
            image = store.images.add(config_raw, top, tags=[ref.name] if ref.digest is None else [])
        except (Cancelled, RegistryUnreachable, KeyboardInterrupt):
            raise
        except BaseException:
            puller.rollback()
            raise
        reporter.info(f"Digest: {digest}")
        result = PullResult(image, ref.familiar, ref.name if ref.digest is None else None, digest, fetched, up_to_date)
        reporter.info(result.status)
        return result


def _display_repo(ref: Reference) -> str:
    return ref.path if ref.domain == reference.DEFAULT_DOMAIN else ref.repository


def _already_named(store: Store, ref: Reference, image_id: str) -> bool:
    if ref.digest is not None:
        try:
            store.images.get(image_id)
            return True
        except ImageNotFound:
            return False
    try:
        return store.images.resolve(ref.name).id == image_id
    except StrataError:
        return False
