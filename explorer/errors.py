"""The one exception root and its families.

Every failure a user can cause or meet is a ``StrataError``: the CLI prints ``str(err)``
as one line and exits with ``err.exit_code``; the GUI shows the same text in a dialog.
Anything else escaping is a bug. Subclasses carry the data a message needs so callers
can react without parsing text.
"""

from __future__ import annotations

import os


class StrataError(Exception):
    """Base of every error Strata reports to a user."""

    exit_code = 125

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- lookups -------------------------------------------------------------------------


class NotFound(StrataError):
    """A named object does not exist in the store."""

    kind = "object"

    def __init__(self, name: str) -> None:
        super().__init__(f"No such {self.kind}: {name}")
        self.name = name


class ImageNotFound(NotFound):
    kind = "image"


class LayerNotFound(NotFound):
    kind = "layer"


class ContainerNotFound(NotFound):
    kind = "container"


class VolumeNotFound(NotFound):
    kind = "volume"


class PathNotFound(StrataError):
    """A path does not exist inside an image, container or volume."""

    def __init__(self, where: str, path: str) -> None:
        super().__init__(f"{where}: no such file or directory: {path}")
        self.where = where
        self.path = path


class AmbiguousName(StrataError):
    def __init__(self, prefix: str, matches: list[str]) -> None:
        super().__init__(f"{prefix!r} is ambiguous: it matches {len(matches)} objects; give more characters")
        self.prefix = prefix
        self.matches = matches


# --- references still held -----------------------------------------------------------


class InUse(StrataError):
    """Deleting something another object still references."""

    def __init__(self, what: str, users: list[str], hint: str = "") -> None:
        shown = ", ".join(users[:5]) + (" …" if len(users) > 5 else "")
        message = f"{what} is in use by {shown}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)
        self.what = what
        self.users = users


class ImageInUse(InUse):
    pass


class LayerInUse(InUse):
    pass


class ContainerRunning(InUse):
    pass


class VolumeInUse(InUse):
    pass


class AlreadyExists(StrataError):
    pass


# --- input ---------------------------------------------------------------------------


class InvalidReference(StrataError):
    """An image name, tag or digest that does not follow docker's grammar."""

    def __init__(self, reference: str, why: str) -> None:
        super().__init__(f"invalid reference format {reference!r}: {why}")
        self.reference = reference


class InvalidArgument(StrataError):
    pass


class InvalidName(InvalidArgument):
    pass


# --- archives and content ------------------------------------------------------------


class ArchiveError(StrataError):
    """An archive (docker-archive, OCI layout, layer tar) cannot be read."""


class UnsafeArchive(ArchiveError):
    """An archive tried to write outside its tree or to exhaust resources."""

    def __init__(self, member: str, why: str) -> None:
        super().__init__(f"refusing archive entry {member!r}: {why}")
        self.member = member
        self.why = why


class TruncatedArchive(ArchiveError):
    """A tar stream ended inside a member, a header or its end-of-archive blocks (Go's
    ``unexpected EOF``); ``member`` is the last entry read before the end, "" for none."""

    def __init__(self, member: str, message: str) -> None:
        super().__init__(message)
        self.member = member


class DigestMismatch(ArchiveError):
    def __init__(self, what: str, expected: str, got: str) -> None:
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {got}")
        self.what = what
        self.expected = expected
        self.got = got


class SizeMismatch(ArchiveError):
    def __init__(self, what: str, expected: int, got: int) -> None:
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {got}")
        self.what = what
        self.expected = expected
        self.got = got


# --- store ---------------------------------------------------------------------------


class StoreError(StrataError):
    """The store cannot be opened or is damaged."""


class StoreBusy(StoreError):
    pass


class StoreFull(StoreError):
    """The disk under the store is full (ENOSPC, EDQUOT): pruning helps."""


class StoreReadOnly(StoreError):
    """The store is on a read-only file system or its database cannot be written:
    pruning does not help, so it is not a ``StoreFull``."""


class StoreDamaged(StoreError):
    """The store's database is damaged or lost while its directories hold data.

    ``where`` is the database's path, ``what`` says what is wrong with it; the message
    points at the one command that rebuilds it (and must not loop: see
    ``api.system.System.check``)."""

    def __init__(self, where: str, what: str, lost: bool = False) -> None:
        if lost:
            text = (
                f"the store's database {where} is {what} while layers/, containers/ or volumes/ hold data; "
                "`strata system check --repair` rebuilds it from those directories (it deletes nothing)"
            )
        else:
            text = (
                f"the store's database {where} is damaged ({what}); `strata system check --repair` "
                "salvages the rows it can read and rebuilds the rest from the store's directories"
            )
        super().__init__(text)
        self.where = where
        self.what = what
        self.lost = lost


# --- build ---------------------------------------------------------------------------


class DockerfileError(StrataError):
    """A Dockerfile problem, always tied to a line."""

    def __init__(self, message: str, line: int = 0, filename: str = "Dockerfile") -> None:
        text = f"{filename}:{line}: {message}" if line else f"{filename}: {message}"
        super().__init__(text)
        self.line = line
        self.filename = filename
        self.detail = message


class BuildError(StrataError):
    """A build step failed after it started (a RUN exited non-zero)."""

    def __init__(self, message: str, line: int = 0, exit_status: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.exit_status = exit_status


class Cancelled(StrataError):
    def __init__(self, what: str = "operation") -> None:
        super().__init__(f"{what} cancelled")


# --- runtime -------------------------------------------------------------------------


class RuntimeUnavailable(StrataError):
    """The kernel or system settings do not allow rootless containers."""


class ContainerStateError(StrataError):
    pass


class HelperStalled(StrataError):
    """A helper process (inside a root, a user namespace, an exec's start) made no
    progress for ``idle`` seconds while nothing it waited for was ours to give: it was
    killed, and the operation failed with nothing left running."""

    def __init__(self, what: str, idle: float) -> None:
        super().__init__(
            f"{what}: the helper process made no progress for {idle:g} s and was stopped; "
            "look for a hung mount or a FIFO in the way, then try again"
        )
        self.what = what
        self.idle = idle


class CommandNotFound(StrataError):
    exit_code = 127


class CommandNotExecutable(StrataError):
    exit_code = 126


# --- registries ----------------------------------------------------------------------


class RegistryError(StrataError):
    pass


class RegistryUnreachable(RegistryError):
    """The registry could not be reached or the connection broke (DNS, refused, TLS, timeout).

    Nothing it sent was wrong, so whatever a pull already finished is kept for the next try."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(f"cannot talk to registry {host}: {why}")
        self.host = host
        self.why = why


class TransferInterrupted(RegistryUnreachable):
    """A blob stopped arriving before its descriptor's size: a cut connection or a truncated blob."""

    def __init__(self, host: str, what: str, got: int, expected: int) -> None:
        RegistryError.__init__(
            self, f"{what} from {host} was cut short after {got} of {expected} bytes; pull again to finish"
        )
        self.host = host
        self.why = "truncated"
        self.got = got
        self.expected = expected


class RegistryAuthError(RegistryError):
    """The registry refused our credentials, or wants some and we have none."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(why)
        self.host = host


class ManifestUnknown(RegistryError):
    """The registry has no such repository, tag or digest."""

    def __init__(self, reference: str, why: str = "manifest unknown") -> None:
        super().__init__(f"manifest for {reference} not found: {why}")
        self.reference = reference


class RegistryProtocolError(RegistryError):
    """The server answered, but not as an OCI distribution registry would (HTML, bad JSON,
    redirect loops, unsupported manifests)."""


class FileOperationFailed(StrataError):
    """Copying into, out of or editing a container's or volume's files failed
    (the message names the side: ``container NAME``, ``volume NAME`` or ``host``)."""


class CloneFailed(StrataError):
    """A background hard-link clone of a layer did not complete; the caller writes the
    layer without it (never shown to a user unless that fails too)."""


class PathTooLong(StrataError):
    """A path longer than PATH_MAX that a path-based copy cannot reach (the vfs driver)."""

    def __init__(self, path: str, where: str) -> None:
        self.path = path
        self.where = where
        head = path if len(path) <= 60 else path[:60] + "…"
        super().__init__(
            f"{where}: cannot reach {head} ({len(os.fsencode(path))} bytes): its path on disk is "
            "longer than PATH_MAX (4096 bytes); the overlay storage driver handles such paths"
        )
