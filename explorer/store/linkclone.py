"""A hard-link clone of a layer directory, made in the background.

A build step that runs again with one input file changed writes a layer that is the
earlier one with that file different. Writing it from scratch means one mkdir per
directory and one link per file, and mkdir is slow on many filesystems (over 100 µs
here): thousands of directories cost more than everything else in such a rebuild.
``cp -lRP`` makes the same tree in C on the other core while the builder works out
what the new layer should hold; the writer then only changes what differs (see
``build.copy.LayerWriter``'s ``base``). Layer files are never modified in place, so
sharing their inodes is safe, and the clone's directories are its own.

Files are the same inodes, so only directories are new, and none of their metadata is
copied (``--no-preserve=all``, which spares cp four syscalls a directory): the writer
gives every directory its mode, owner, times and opaque marker itself. ``-P`` matters:
with ``-l`` alone cp links what a symlink points to instead of the symlink.
"""

from __future__ import annotations

import subprocess

from ..errors import CloneFailed


class LinkClone:
    """``cp -lRP`` of ``source``'s contents into the existing directory ``dest``, running."""

    def __init__(self, source: str, dest: str) -> None:
        self.source = source
        self.dest = dest
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                ["cp", "-lRP", "--no-preserve=all", "-T", "--", source, dest],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                close_fds=True,
            )
        except OSError as e:
            self._proc = None
            self._error = f"cannot start cp: {e.strerror or e}"

    def wait(self) -> None:
        """Block until the clone is complete; ``CloneFailed`` if it is not."""
        proc = self._proc
        if proc is None:
            raise CloneFailed(self._error)
        _out, err = proc.communicate()
        if proc.returncode != 0:
            message = (err or b"").decode("utf-8", "replace").strip().splitlines()
            raise CloneFailed(f"cp -lRP {self.source} exited {proc.returncode}: {message[0] if message else ''}")

    def cancel(self) -> None:
        """Stop the clone if it still runs (the caller removes ``dest``); harmless after ``wait``."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            proc.communicate()
