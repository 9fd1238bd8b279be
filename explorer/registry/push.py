"""``strata push``: an image from the store to a registry, sending only what it lacks.

For each layer the registry is asked first whether it already has a blob this store
knows for the layer (``HEAD``), then whether it can link one from another repository of
the same registry (cross-repository mount); only then is the layer's tar reassembled,
compressed and streamed up in one chunked ``PATCH`` while its digest is computed. The
manifest goes last, so a failed push never leaves a tag pointing at missing blobs.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import DigestMismatch, InvalidArgument, RegistryError
from ..store import reference
from ..store.archive import MT_DOCKER_MANIFEST, MT_OCI_MANIFEST
from ..store.layers import Layer
from ..store.reference import Reference
from . import events
from .client import RegistryClient
from .compression import COMPRESSIONS, CompressingWriter
from .events import Aborted, Meter, Progress, Reporter
from .manifests import (
    DOCKER,
    GZIP,
    LAYER_COMPRESSION,
    LAYER_MEDIA_TYPE,
    NONE,
    OCI,
    Descriptor,
    image_manifest,
)
from .settings import RegistrySettings
from .transport import ChunkedRequest, Transport

if TYPE_CHECKING:
    from ..store.store import Store

CONCURRENCY = 3
FORMATS = (DOCKER, OCI)


@dataclass(frozen=True)
class PushResult:
    reference: Reference
    digest: str  # of the manifest pushed
    size: int  # of the manifest pushed
    uploaded: int  # layers whose bytes were sent

    @property
    def line(self) -> str:
        """Docker's last line of a push."""
        return f"{self.reference.tag}: digest: {self.digest} size: {self.size}"


class _Upload:
    """The sink a layer's compressed bytes go to: a chunked PATCH, with progress and cancel."""

    def __init__(self, request: ChunkedRequest, reporter: Reporter) -> None:
        self.request = request
        self.reporter = reporter

    def write(self, data: bytes) -> int:
        self.reporter.check()
        return self.request.write(data)


class _Metered:
    """The uncompressed side of an upload: ``write_tar`` writes here, progress counts here."""

    def __init__(self, writer: CompressingWriter, meter: Meter) -> None:
        self.writer = writer
        self.meter = meter

    def write(self, data: bytes) -> int:
        n = self.writer.write(data)
        self.meter.add(n)
        return n


def resolve_format(compression: str, fmt: str | None) -> str:
    if compression not in COMPRESSIONS:
        raise InvalidArgument(f"unknown compression {compression!r}: use {', '.join(COMPRESSIONS)}")
    if fmt is None:
        return DOCKER if compression == GZIP else OCI
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown manifest format {fmt!r}: use docker or oci")
    if (fmt, compression) not in LAYER_MEDIA_TYPE:
        raise InvalidArgument(f"{compression} layers need --format oci; Docker's manifest format has no {compression}")
    return fmt


class _Pusher:
    def __init__(
        self, store: Store, client: RegistryClient, ref: Reference, reporter: Reporter, compression: str, fmt: str
    ) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.reporter = reporter
        self.compression = compression
        self.fmt = fmt
        self.media_type = LAYER_MEDIA_TYPE[(fmt, compression)]
        self.source = f"{ref.domain}/{ref.path}"

    def known_blobs(self, layer: Layer) -> list[tuple[Descriptor, str]]:
        """Blobs of this layer in the chosen compression that this store has seen, with
        where they were seen (``host/repository``), plus the uncompressed tar itself when
        that is what we would send."""
        rows = self.store.meta.query("SELECT digest, media_type, size, source FROM blobs WHERE layer=?", (layer.id,))
        found: list[tuple[Descriptor, str]] = []
        for digest, media, size, source in rows:
            if LAYER_COMPRESSION.get(media) == self.compression:
                found.append((Descriptor(self.media_type, digest, size), str(source)))
        if self.compression == NONE and all(d.digest != layer.diff_id for d, _ in found):
            found.append((Descriptor(self.media_type, layer.diff_id, layer.size), ""))
        return found

    def reuse(self, layer: Layer) -> Descriptor | None:
        """A blob the registry already has or can mount, without sending bytes."""
        short = layer.diff_id[7:19]
        for desc, source in self.known_blobs(layer):
            self.reporter.check()
            if self.client.blob_exists(self.repo, desc.digest, f"checking layer {short}"):
                self.reporter.emit(
                    events.TransferEvent(short, events.EXISTS, desc.size, desc.size, message="Layer already exists")
                )
                return desc
            domain, _, source_repo = source.partition("/")
            if (
                domain == self.ref.domain
                and source_repo
                and source_repo != self.repo
                and self.client.mount_blob(self.repo, desc.digest, source_repo)
            ):
                self.reporter.emit(
                    events.TransferEvent(
                        short, events.MOUNTED, desc.size, desc.size, message=f"Mounted from {source_repo}"
                    )
                )
                return desc
        return None

    def push_layer(self, layer: Layer) -> tuple[Descriptor, bool]:
        """The layer's blob in the registry; True when its bytes had to be sent."""
        self.reporter.check()
        desc = self.reuse(layer)
        if desc is not None:
            return desc, False
        short = layer.diff_id[7:19]
        what = f"layer {short}"
        meter = self.reporter.meter(short, events.UPLOADING, layer.size, "Pushing")
        location = self.client.start_upload(self.repo)
        request = self.client.stream_upload(self.repo, location)
        try:
            writer = CompressingWriter(self.compression, _Upload(request, self.reporter))
            self.store.layers.write_tar(layer.id, _Metered(writer, meter))  # type: ignore[arg-type]
            writer.close()
            if writer.diff_id != layer.diff_id:
                raise DigestMismatch(
                    f"stored layer {layer.id[:12]} (store damaged? run `strata system check`)",
                    layer.diff_id,
                    writer.diff_id,
                )
            self.client.finish_stream(self.repo, request, writer.digest, what)
        except BaseException:
            request.abort()
            self.client.cancel_upload(self.repo, location)
            raise
        desc = Descriptor(self.media_type, writer.digest, writer.blob_size)
        self.store.layers.record_blob(layer.id, desc.digest, desc.media_type, desc.size, self.source)
        meter.done(events.PUSHED, "Pushed")
        return desc, True

    def layers(self, layers: list[Layer], concurrency: int) -> tuple[list[Descriptor], int]:
        for layer in layers:
            self.reporter.emit(events.TransferEvent(layer.diff_id[7:19], events.PREPARING, message="Preparing"))
        if not layers:
            return [], 0
        futures: list[Future[tuple[Descriptor, bool]]] = []
        with ThreadPoolExecutor(
            max_workers=max(1, min(concurrency, len(layers))), thread_name_prefix="strata-push"
        ) as pool:
            try:
                for layer in layers:
                    future = pool.submit(self.push_layer, layer)
                    future.add_done_callback(self._stop_siblings_on_failure)
                    futures.append(future)
                wait(futures)
            except BaseException:
                self.reporter.abort.set()
                raise
        failures = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in failures if not isinstance(e, Aborted)]
        if real:
            raise real[0]  # type: ignore[misc]
        if failures:
            raise RegistryError("push aborted")
        results = [f.result() for f in futures]
        # Blobs known before but registered only now (mounted or already present) are
        # recorded too, with this repository as a place to mount them from next time.
        for layer, (desc, _) in zip(layers, results, strict=True):
            self.store.layers.record_blob(layer.id, desc.digest, desc.media_type, desc.size, self.source)
        return [d for d, _ in results], sum(1 for _, sent in results if sent)

    def _stop_siblings_on_failure(self, future: Future[tuple[Descriptor, bool]]) -> None:
        if future.exception() is not None:
            self.reporter.abort.set()


def push(
    store: Store,
    text: str,
    *,
    compression: str = GZIP,
    fmt: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    settings: RegistrySettings | None = None,
    transport: Transport | None = None,
    concurrency: int = CONCURRENCY,
) -> PushResult:
    """Push the local image named ``text`` to the registry its name points at."""
    fmt = resolve_format(compression, fmt)
    ref = reference.parse(text)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push {text}: push a tag, not a digest")
    image = store.images.resolve(ref.name)
    layers = store.images.layers(image)
    reporter = Reporter(progress, cancel, "push")
    settings = settings or RegistrySettings.load()
    with RegistryClient(ref.domain, settings, transport=transport) as client:
        reporter.info(f"The push refers to repository [{ref.repository}]")
        client.ping()
        pusher = _Pusher(store, client, ref, reporter, compression, fmt)
        descriptors, uploaded = pusher.layers(layers, concurrency)
        reporter.check()
        config = Descriptor("", image.id, len(image.raw_config))
        if not client.blob_exists(ref.path, image.id, "checking the image config"):
            client.upload_bytes(ref.path, image.raw_config, "the image config")
        raw = image_manifest(fmt, config, descriptors)
        media = MT_DOCKER_MANIFEST if fmt == DOCKER else MT_OCI_MANIFEST
        reporter.check()
        digest = client.put_manifest(ref.path, ref.tag or reference.DEFAULT_TAG, raw, media)
        result = PushResult(ref, digest, len(raw), uploaded)
        reporter.info(result.line)
        return result
