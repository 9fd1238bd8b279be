"""Running COPY and ADD steps: checksumming what they read, and writing their layers.

A COPY/ADD is checksummed before its cache lookup, since what it reads is part of its
cache key: context files through the stat cache (an unchanged context costs one stat
walk), downloads and heredoc contents by their bytes, ``COPY --from`` sources by the
index of the image or stage they come from. When the step misses, the files are written
straight into a staging directory (``copy``), no container involved.

A COPY that ran before on the same parent most likely makes the same layer with a few
files changed. That earlier layer is reused: a large one is cloned with hard links
(``store.linkclone``) and only what differs is written; a small one lends its unchanged
files as hard links. When the sources' count or size already show the step will miss,
the clone starts before the lookup (a *head start*) and proceeds alongside the
checksumming and planning.

``CopySteps`` is a mixin of ``executor.Builder``; it holds no state of its own.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..bulk import collector_paused
from ..errors import ArchiveError, CloneFailed, DockerfileError, TruncatedArchive
from ..store.images import Image
from ..store.index import FILE, FileEntry
from ..store.layers import Predecessor
from ..store.union import UnionView
from .checksum import StatCache, checksum, context_records, index_records, record, stat_snapshot
from .configenv import env_dict
from .context import ContextEntry, SourceMatch
from .instructions import Add, Copy
from .stages import Stage
from .stephost import StepHost

if TYPE_CHECKING:
    from ..store.layers import Staging
    from ..store.linkclone import LinkClone
    from .cache import BuildCache
    from .copy import CopyOptions, CopyPlan
    from .copyitems import Owner
    from .executor import Snapshot, Step
    from .layerwriter import LayerWriter

URL_PREFIXES = ("http://", "https://")
# A COPY whose earlier result has at least this many paths starts from a hard-link clone
# of it (store.linkclone); smaller ones are written directly, linking unchanged files.
_CLONE_AT_LEAST = 256


@dataclass
class _HeadStart:
    """A COPY layer begun before its cache lookup (see ``CopySteps._begin_early``): a staging
    directory becoming a clone of the step's earlier layer. ``exits`` removes both."""

    step: Step
    exits: contextlib.ExitStack
    staging: Staging
    clone: LinkClone
    earlier: str
    base: dict[str, FileEntry]


class CopySteps(StepHost):
    """The COPY/ADD half of ``Builder``."""

    # Set by ``Builder.__init__``; declared here so mypy checks their use.
    _stat_cache: StatCache | None
    _digests: dict[str, str]
    _head_start: _HeadStart | None

    if TYPE_CHECKING:

        @property
        def cache(self) -> BuildCache: ...

    def _copy_sources(self, step: Step, snap: Snapshot) -> tuple[str, Callable[[], list[str]], Any]:
        """The checksum of everything a COPY/ADD reads, its record lines (for miss
        reasons) and what ``_copy`` needs to place the files."""
        ins = step.expanded
        assert isinstance(ins, (Copy, Add)) and self.ctx is not None
        records: list[str] = []
        prepared: dict[str, Any] = {}
        if isinstance(ins, Copy) and ins.from_:
            from .copy import plan_image_copy

            prepared = self._destination(step, snap)
            view, dest, dest_as_dir = prepared["view"], prepared["dest"], prepared["dest_as_dir"]
            ref = step.from_ref
            if isinstance(ref, Stage):
                src_snap = self.snapshots[ref.index]
                src_view = self._view(src_snap)
            else:
                assert isinstance(ref, Image)
                src_view = UnionView.of_layers(self.store, self.store.images.layers(ref))
            plan, seen = plan_image_copy(src_view, list(ins.sources), dest, dest_as_dir, view, prepared["opts"])
            prepared["plan"] = plan
            records += index_records(seen)
        else:
            from .copy import context_entries, parents_selection

            self._refuse_local_checksum(step)
            opts = self._options(step)
            entries: list[ContextEntry] = []
            if isinstance(ins, Copy) and ins.parents:
                local = [s for s in ins.sources if not s.startswith(URL_PREFIXES)]
                entries = [entry for group in parents_selection(self.ctx, local, opts) for _, entry in group]
            else:
                entries = context_entries(self.ctx, step.sources, opts)
            context_lines: Callable[[], list[str]] = list
            if entries:
                prepared["shape"] = f"{len(entries)} {sum(e.size for e in entries)}"
                self._begin_early(step, snap, prepared["shape"])
                summary, context_lines = self._context_checksum(entries)
                records.append(f"\0context\0{summary}")

            def digests() -> dict[str, str]:
                context_lines()  # fills self._digests (a remembered tree sum may have skipped it)
                return self._digests

            prepared["digests"] = digests
            urls = [s for s in ins.sources if s.startswith(URL_PREFIXES)]
            for url in urls:
                path = self._download(url, step)
                size = os.path.getsize(path)
                from .checksum import hash_file

                digest = hash_file(path, size)
                if isinstance(ins, Add) and ins.checksum:
                    self._verify_checksum(url, path, ins.checksum, step)
                records.append(record(url, FILE, 0o600, 0, 0, size, "", digest))
                prepared.setdefault("urls", []).append((url, path, size, digest))

            inline: list[tuple[str, bytes]] = []
            env = {**step.run_args, **step.used_args, **env_dict(step.env)}
            assert self.plan is not None
            for content in ins.contents:
                data = content.data
                if content.expand:
                    data = _expand_heredoc(data, env, self.plan.escape)
                raw = data.encode("utf-8", "surrogateescape")
                inline.append((content.path, raw))
                import xxhash

                records.append(record("<<" + content.path, FILE, 0, 0, 0, len(raw), "", xxhash.xxh3_128_hexdigest(raw)))
            prepared["inline"] = inline
            records.sort()
            own = [r for r in records if not r.startswith("\0context\0")]
            return checksum(records), lambda: sorted(own + context_lines()), prepared
        records.sort()
        return checksum(records), lambda: records, prepared

    def _context_checksum(self, entries: list[ContextEntry]) -> tuple[str, Callable[[], list[str]]]:
        """The checksum of context entries, and (lazily) their record lines.

        When every entry's stat fields are what they were when this checksum was last
        computed, the checksum is taken from ``build_tree_sums`` without reading the stat
        cache at all: that is the whole cost of an unchanged context, one stat walk.
        """
        assert self.ctx is not None
        if self._stat_cache is None:
            self.cache  # noqa: B018 - creates the tables the stat cache lives in
            self._stat_cache = StatCache(self.store.meta, self.ctx.root)
        stat_cache = self._stat_cache
        snapshot, racy = stat_snapshot(self.ctx.root, entries, stat_cache.started_ns)
        done: list[list[str]] = []

        def lines() -> list[str]:
            if not done:
                assert self.ctx is not None
                done.append(sorted(context_records(self.ctx, stat_cache, entries, self._digests)))
            return done[0]

        known = self.cache.tree_sum(snapshot)
        if known is not None:
            return known, lines
        summary = checksum(lines())
        if not racy:
            self.cache.put_tree_sum(snapshot, summary)
        return summary, lines

    def _download(self, url: str, step: Step) -> str:
        """The URL's content in a scratch file. Redirects are followed, but not across the
        edge of this machine, judged by the addresses connected to (``registry.peers``): a
        server elsewhere cannot make the build read this machine's own services, nor a
        local one send it to plain HTTP elsewhere."""
        import urllib.error
        import urllib.parse

        from ..registry.peers import RedirectRefused, open_url

        scratch = self._new_scratch("download")
        name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
        target = scratch / name
        try:
            with open_url(url, timeout=30) as response, open(target, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except RedirectRefused as err:
            raise DockerfileError(
                f"ADD {url}: {err}; if you trust it, download the file into the build context and ADD it from there",
                step.line,
                self.filename,
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            why = getattr(err, "reason", None) or err
            raise DockerfileError(
                f"ADD {url}: cannot download it ({why}); check the network, or download the file into the "
                f"build context and ADD it from there",
                step.line,
                self.filename,
            ) from None
        return str(target)

    def _verify_checksum(self, url: str, path: str, expected: str, step: Step) -> None:
        """ADD --checksum=sha256:…: the download must be exactly that content."""
        import hashlib

        algorithm, _, want = expected.partition(":")
        if algorithm not in ("sha256", "sha384", "sha512") or not want:
            raise DockerfileError(
                f"ADD --checksum={expected}: use sha256:<hex> (or sha384, sha512)", step.line, self.filename
            )
        h = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != want.lower():
            raise DockerfileError(
                f"ADD {url}: checksum mismatch: expected {expected}, got {algorithm}:{h.hexdigest()}",
                step.line,
                self.filename,
            )

    def _earlier_layer(self, step: Step, snap: Snapshot) -> str | None:
        """The layer this step made the last time on this parent: the new layer is most
        likely that one with a few files changed."""
        for sibling in self.cache.siblings(snap.key, limit=10):
            if sibling.layer and sibling.detail.get("instruction") == step.instruction.source:
                return sibling.layer
        return None

    def _index(self, layer_id: str | None) -> dict[str, FileEntry]:
        if layer_id is None:
            return {}
        with collector_paused():
            return {e.path: e for e in self.store.layers.entries(layer_id)}

    def _worth_cloning(self, layer_id: str | None) -> bool:
        from ..errors import LayerNotFound

        if layer_id is None:
            return False
        try:
            return self.store.layers.get(layer_id).entries >= _CLONE_AT_LEAST
        except LayerNotFound:
            return False

    def _options(self, step: Step, owner: Owner | None = None) -> CopyOptions:
        """The step's --chown (resolved by the caller), --chmod, --exclude and --parents."""
        from .chmod import parse_chmod
        from .copy import CopyOptions, exclude_matcher
        from .copyitems import ROOT

        ins = step.expanded
        assert isinstance(ins, (Copy, Add))
        return CopyOptions(
            ins.keyword,
            step.line,
            self.filename,
            owner or ROOT,
            chown=bool(ins.chown),
            chmod=parse_chmod(ins.chmod, step.line, self.filename, ins.keyword),
            exclude=exclude_matcher(ins.exclude),
            parents=isinstance(ins, Copy) and ins.parents,
        )

    def _refuse_local_checksum(self, step: Step) -> None:
        """ADD --checksum is for downloads (and Git, which Strata does not fetch): BuildKit
        refuses it for context files and for several sources."""
        ins = step.expanded
        if not isinstance(ins, Add) or not ins.checksum:
            return
        if len(ins.sources) != 1:
            raise DockerfileError("ADD --checksum can't be specified for multiple sources", step.line, self.filename)
        if not ins.sources[0].startswith(URL_PREFIXES):
            raise DockerfileError(
                f"ADD --checksum requires HTTP(S) or Git sources, not {ins.sources[0]}", step.line, self.filename
            )

    def _destination(self, step: Step, snap: Snapshot) -> dict[str, Any]:
        """Where a COPY/ADD writes and as whom: only needed when the step runs.

        With --link (and no --chmod, as in BuildKit, which copies onto an empty tree and merges
        that in only then) the destination is planned over an empty image: no symlink of the
        image is followed and the directories on the way are the copy's own, 0755, over the
        image's. Owner names are still looked up in the image."""
        from .copy import absolute_dest, resolve_owner

        ins = step.expanded
        assert isinstance(ins, (Copy, Add))
        image_view = self._view(snap)
        view = UnionView([]) if ins.link and not ins.chmod else image_view
        dest, dest_as_dir = absolute_dest(ins.dest, step.config_before.get("WorkingDir") or "/")
        owner = resolve_owner(image_view, ins.chown, step.line, self.filename, ins.keyword)
        opts = self._options(step, owner)
        return {"view": view, "dest": dest, "dest_as_dir": dest_as_dir, "owner": owner, "opts": opts}

    def _begin_early(self, step: Step, snap: Snapshot, shape: str) -> None:
        """Start cloning this step's earlier layer before the cache lookup when the step will
        surely run: its sources' count or bytes differ from that run's (``shape``). The
        clone (``store.linkclone``) then proceeds alongside checksumming and planning."""
        if self.options.no_cache or not _CLONE_AT_LEAST:
            return
        self._drop_head_start()
        for sibling in self.cache.siblings(snap.key, limit=10):
            if sibling.layer and sibling.detail.get("instruction") == step.instruction.source:
                if sibling.detail.get("shape") in (None, shape):
                    return  # the same shape: maybe only touched, and then a cache hit
                earlier = sibling.layer
                break
        else:
            return
        if not self._worth_cloning(earlier):
            return
        from ..store.linkclone import LinkClone

        exits = contextlib.ExitStack()
        try:
            st = exits.enter_context(self.store.layers.staging())
            clone = LinkClone(str(self.store.layers.diff_dir(earlier)), str(st.diff))
            exits.callback(clone.cancel)  # runs before the staging directory goes
            base = self._index(earlier)  # read while cp works
        except BaseException:
            exits.close()
            raise
        self._head_start = _HeadStart(step, exits, st, clone, earlier, base)

    def _drop_head_start(self) -> None:
        head, self._head_start = self._head_start, None
        if head is not None:
            head.exits.close()

    def _copy(self, step: Step, snap: Snapshot, prepared: dict[str, Any]) -> str:
        if "view" not in prepared:
            prepared.update(self._destination(step, snap))
        head, self._head_start = self._head_start, None
        if head is not None and head.step is not step:
            head.exits.close()
            head = None
        earlier: str | None
        if head is not None:
            earlier, base = head.earlier, head.base
            with head.exits:
                try:
                    return self._write_copy(step, snap, prepared, earlier, base, head.staging, head.clone)
                except CloneFailed:
                    pass  # written the ordinary way below, in a fresh staging directory
        else:
            # --no-cache trusts nothing earlier, not even its files: everything is written afresh.
            earlier = self._earlier_layer(step, snap) if not self.options.no_cache else None
            base = {}
            if earlier is not None and self._worth_cloning(earlier):
                from ..store.linkclone import LinkClone

                with self.store.layers.staging() as st:
                    clone = LinkClone(str(self.store.layers.diff_dir(earlier)), str(st.diff))
                    try:
                        base = self._index(earlier)  # read while cp works
                        return self._write_copy(step, snap, prepared, earlier, base, st, clone)
                    except CloneFailed:
                        pass
                    finally:
                        clone.cancel()  # before the staging directory goes
            else:
                base = self._index(earlier)
        with self.store.layers.staging() as st:
            return self._write_copy(step, snap, prepared, earlier, base, st, None)

    def _write_copy(
        self,
        step: Step,
        snap: Snapshot,
        prepared: dict[str, Any],
        earlier: str | None,
        base: dict[str, FileEntry],
        st: Staging,
        cloning: LinkClone | None,
    ) -> str:
        """Write the COPY/ADD layer into ``st``. With ``cloning`` the staging directory is
        becoming a hard-link clone of ``earlier`` (``cp -lRP``, while the items are worked
        out) and only what differs is written; without, unchanged files are still
        hard-linked from ``earlier``."""
        from .copy import place_all
        from .copyitems import CopyError
        from .layerwriter import LayerWriter

        ins = step.expanded
        assert isinstance(ins, (Copy, Add)) and self.ctx is not None
        view: UnionView = prepared["view"]
        keyword = ins.keyword
        layers = self.store.layers
        earlier_dir = str(layers.diff_dir(earlier)) if earlier is not None else ""
        reuse = {} if cloning else {path: (earlier_dir + path, e.digest) for path, e in base.items() if e.type == FILE}
        side_dir = None
        if cloning is not None:
            side_dir = str(st.path / "incoming")
            os.mkdir(side_dir, 0o700)
        writer = LayerWriter(
            str(st.diff),
            view,
            self.filename,
            step.line,
            keyword,
            reuse=reuse,
            base=base if cloning else None,
            base_ready=cloning.wait if cloning else None,
            side_dir=side_dir,
        )
        writer.new_dir_mode = prepared["opts"].dir_mode

        def failed(e: OSError) -> DockerfileError:
            return DockerfileError(
                f"{keyword} failed: {e.strerror or e}: {e.filename or ''}".rstrip(": "), step.line, self.filename
            )

        def settle() -> None:
            try:
                writer.settle()
            except OSError as e:
                raise failed(e) from None

        try:
            try:
                if "plan" in prepared:
                    place_all(writer, prepared["plan"])
                else:
                    self._place_context(writer, step, prepared)
                # With a clone, the tree is completed (settle) after its tar is hashed.
                entries = writer.finish(settle=cloning is None)
            except (CopyError, CloneFailed):
                raise
            except OSError as e:
                raise failed(e) from None
            same = frozenset(path[1:] for path in writer.same if path in writer.entries)
            predecessor = Predecessor(earlier, base, same) if earlier is not None else None
            return layers.add_dir(
                st,
                entries,
                snap.top_layer,
                self._created_by(step),
                predecessor,
                elsewhere=writer.elsewhere if cloning else None,
                settle=settle if cloning else None,
            ).id
        finally:
            writer.close()
            if cloning is not None:
                cloning.cancel()

    def _place_context(self, writer: LayerWriter, step: Step, prepared: dict[str, Any]) -> None:
        """Place a COPY/ADD's context sources, archives (ADD) extracted, downloads and heredocs."""
        from .archives import extract_into, opened_archive
        from .copy import check_several, file_target, inline_items, place_all
        from .copyitems import CopyError, CopyItem

        ins = step.expanded
        assert isinstance(ins, (Copy, Add)) and self.ctx is not None
        view: UnionView = prepared["view"]
        dest, dest_as_dir = prepared["dest"], prepared["dest_as_dir"]
        opts: CopyOptions = prepared["opts"]
        keyword = ins.keyword
        if isinstance(ins, Copy) and ins.parents:
            self._place_parents(writer, step, prepared)
        else:
            unpack = isinstance(ins, Add) and ins.unpack is not False
            # In source order: runs of plain sources, and archives (ADD) between them.
            runs: list[list[SourceMatch] | tuple[SourceMatch, str]] = [[]]
            count = len(prepared.get("urls", [])) + len(prepared.get("inline", []))
            for match in step.sources:
                if unpack and not match.is_dir:
                    path = self.ctx.abspath(match.real)
                    with opened_archive(path) as tar:
                        if tar is not None:
                            runs += [(match, path), []]
                            continue
                last = runs[-1]
                assert isinstance(last, list)
                last.append(match)
                count += 1
            check_several(count, dest, dest_as_dir, view, opts)
            who = opts.owner if opts.chown else None
            for run in runs:
                if isinstance(run, list):
                    self._place_plain(writer, step, prepared, run)
                    continue
                match, path = run
                target = view.resolve_path(dest)
                writer.ensure_dir(target, opts.owner, time.time(), parents_owner=opts.owner)
                with opened_archive(path) as tar:
                    assert tar is not None
                    try:
                        extract_into(writer, tar, target, who, step.line, self.filename)
                    except TruncatedArchive:
                        raise CopyError(
                            f"{keyword} {match.written}: {match.written} is truncated (unexpected EOF)",
                            step.line,
                            self.filename,
                        ) from None
                    except ArchiveError as e:
                        raise CopyError(
                            f"{keyword} {match.written}: {match.written} is a damaged archive: {e}",
                            step.line,
                            self.filename,
                        ) from None
        for url, path, size, digest in prepared.get("urls", []):
            name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "index.html"
            target = file_target(view, dest, dest_as_dir, name)
            item = CopyItem(
                target, FILE, opts.mode(0o600, False), opts.owner, time.time_ns(), size, digest, source=path
            )
            writer.place(item, opts.owner)
        if prepared.get("inline"):
            place_all(writer, inline_items(prepared["inline"], dest, dest_as_dir, view, opts, time.time_ns()))

    def _place_plain(
        self, writer: LayerWriter, step: Step, prepared: dict[str, Any], matches: list[SourceMatch]
    ) -> None:
        from .copy import place_all, plan_context_copy

        if not matches:
            return
        assert self.ctx is not None
        plan: CopyPlan = plan_context_copy(
            self.ctx,
            matches,
            prepared["digests"](),
            prepared["dest"],
            prepared["dest_as_dir"],
            prepared["view"],
            prepared["opts"],
        )
        place_all(writer, plan)

    def _place_parents(self, writer: LayerWriter, step: Step, prepared: dict[str, Any]) -> None:
        from .copy import place_all, plan_parents_copy

        ins = step.expanded
        assert isinstance(ins, Copy) and self.ctx is not None
        words = [s for s in ins.sources if not s.startswith(URL_PREFIXES)]
        plan = plan_parents_copy(
            self.ctx, words, prepared["digests"](), prepared["dest"], prepared["view"], prepared["opts"]
        )
        place_all(writer, plan)


def _expand_heredoc(data: str, env: Mapping[str, str], escape: str) -> str:
    from .shell import Lexer

    return Lexer(escape, raw_quotes=True, raw_escapes=True).process(data, env).value
