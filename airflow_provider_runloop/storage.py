"""Where exported results go: destination checks, staging beside the destination, an atomic publish.

Everything goes through :class:`airflow.sdk.ObjectStoragePath` (``file://`` built in, ``s3://`` with the
Amazon provider): no storage library of our own. A results file is written to a hidden sibling of its
destination and moved into place only once complete (:class:`StagedFile`), so a failed export never
leaves a partial file, and the leftovers of a killed one are named so they can be found and removed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import IO, Final
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowOptionalProviderFeatureException
from airflow.sdk.io import has_fs

from airflow_provider_runloop.arguments import rendered_later

__all__ = [
    "STALE_STAGING_AGE",
    "StagedFile",
    "check_destination_argument",
    "check_destination_url",
    "check_filesystem",
    "public_uri",
    "resolve_destination",
    "staged_sibling_pattern",
    "staging_name",
    "staging_token",
    "static_destination_uri",
]

log = logging.getLogger(__name__)

_LOCAL_PROTOCOLS: Final = frozenset({"", "file", "local"})
# fsspec's write buffer; object stores upload one part per block. 8 MiB is above S3's 5 MiB minimum part
# size and far below s3fs's 50 MiB default, so memory stays small.
_WRITE_BLOCK_BYTES: Final = 8 * 1024 * 1024

STALE_STAGING_AGE: Final = timedelta(hours=24)
"""A staged results file this old was left by a killed export (none takes a day); the next export to
the same destination removes it. Younger ones may belong to an export still running elsewhere."""


def check_destination_argument(destination: object, storage_conn_id: str | None) -> None:
    """Check a ``destination`` option as far as it can be without the worker's environment.

    A templated value is checked once rendered (:func:`resolve_destination`).

    :raises ValueError: for a destination that cannot name one file, or a conflicting connection.
    :raises TypeError: for a value that is neither a URL string nor an ``ObjectStoragePath``.
    """
    if destination is None:
        if storage_conn_id is not None:
            raise ValueError("storage_conn_id is set but destination is not: set both, or neither")
    elif isinstance(destination, ObjectStoragePath):
        if storage_conn_id and destination.conn_id and destination.conn_id != storage_conn_id:
            raise ValueError(
                f"destination has conn_id {destination.conn_id!r} but storage_conn_id is "
                f"{storage_conn_id!r}: give one of them"
            )
        if not rendered_later(str(destination)):
            check_destination_url(public_uri(destination))
    elif isinstance(destination, str):
        if not rendered_later(destination):
            check_destination_url(destination)
        user_info = urlsplit(destination).netloc.rpartition("@")[0]
        if storage_conn_id and user_info and user_info != storage_conn_id:
            raise ValueError(
                f"destination names the connection {user_info!r} but storage_conn_id is "
                f"{storage_conn_id!r}: give one of them"
            )
    else:
        raise TypeError(
            "destination must be an ObjectStoragePath or a URL string such as "
            f"'file:///data/results.jsonl' or 's3://bucket/key.jsonl', got {type(destination).__name__}"
        )


def resolve_destination(destination: object, storage_conn_id: str | None) -> ObjectStoragePath | None:
    """The rendered ``destination`` as a path its filesystem can write, checked before any request.

    :raises ValueError: for a destination that cannot name one file, or a protocol with no filesystem.
    :raises AirflowOptionalProviderFeatureException: when the filesystem's library is not installed.
    """
    if destination is None:
        return None
    if isinstance(destination, ObjectStoragePath):
        uri = public_uri(destination)
        check_destination_url(uri)
        check_filesystem(urlsplit(uri).scheme, uri)
        if storage_conn_id and not destination.conn_id:
            destination = ObjectStoragePath(destination, conn_id=storage_conn_id)
    elif isinstance(destination, str):
        check_destination_url(destination)
        check_filesystem(urlsplit(destination).scheme, destination)
        # Built only now: with a connection, ObjectStoragePath looks the connection up at once.
        destination = ObjectStoragePath(destination, conn_id=storage_conn_id)
    else:
        raise TypeError(f"destination rendered to a {type(destination).__name__}, not a URL string")
    try:
        destination.fs  # noqa: B018  (the filesystem's own library is imported here)
    except ImportError as exc:
        # The Amazon provider registers s3:// without s3fs, which does the work.
        raise AirflowOptionalProviderFeatureException(
            f"{exc}. For s3:// install 'airflow-provider-runloop[s3]'."
        ) from None
    return destination


class StagedFile:
    """A results file written beside its destination, then moved into place in one step.

    The bytes go to a hidden sibling, ``.<name>.runloop-<token>.partial`` (Spark, Hive, shell and Python
    globs skip names starting with ``.``; the ``.partial`` suffix keeps ``*.jsonl`` from matching it);
    ``commit`` moves it over the destination: a rename on a local filesystem, a server-side copy then a
    delete of the temporary object on object stores (where a new object appears whole or not at all).
    ``discard`` removes the sibling. The token is the same on every try of one task instance, so a
    retry after a crash overwrites the leftover sibling instead of adding another.

    A killed worker (SIGKILL, out of memory, a lost node) runs no cleanup, and a new DAG run has another
    token: so before staging, ``create`` removes the staged siblings of the same destination that are
    older than ``STALE_STAGING_AGE`` (no export runs that long, so none of them is being written), and
    logs each one. The name alone tells what a leftover is and which destination it belongs to.
    """

    def __init__(self, target: ObjectStoragePath, token: str) -> None:
        self.target = target
        self.uri = public_uri(target)
        self.conn_id: str | None = target.conn_id
        self._fs = target.fs
        self._local = (target.protocol or "") in _LOCAL_PROTOCOLS
        self._final = target.path
        parent, _, name = self._final.rpartition("/")
        self._parent = parent or "/"
        self._name = name
        self._temp = f"{parent}/{staging_name(name, token)}"
        self._file: IO[bytes] | None = None
        self._committed = False

    @classmethod
    def create(cls, target: ObjectStoragePath, token: str) -> StagedFile:
        """Check the destination can be written, by creating the empty temporary sibling.

        :raises ValueError: if the destination is a directory or cannot be written (the message says why).
        """
        staged = cls(target, token)
        try:
            if staged._local:
                staged._fs.makedirs(staged._parent, exist_ok=True)
            if staged._fs.isdir(staged._final):
                raise IsADirectoryError(f"{staged.uri} is a directory; name a file in it")
            staged._remove_stale_siblings()
            staged._fs.touch(staged._temp)
        except Exception as exc:
            staged.discard()
            raise ValueError(
                f"Cannot write results to {staged.uri}: {type(exc).__name__}: {exc}. Check the path, its "
                "permissions and the storage connection (storage_conn_id). Nothing was fetched."
            ) from exc
        return staged

    def _remove_stale_siblings(self, now: datetime | None = None) -> None:
        """Remove this destination's staged siblings left by killed exports (older than the limit)."""
        now = now or datetime.now(timezone.utc)
        pattern = staged_sibling_pattern(self._name)
        own = _base_name(self._temp)
        # A glob narrows an object-store listing to this destination's prefix; magic characters in the
        # name would make it match other names, so then the folder is listed (the pattern decides).
        if glob.has_magic(self._name):
            found = self._fs.ls(self._parent, detail=False)
        else:
            found = self._fs.glob(f"{self._parent.rstrip('/')}/.{self._name}.*.partial")
        for path in sorted(str(item) for item in found):
            name = _base_name(path)
            if name == own or not pattern.fullmatch(name):
                continue  # this task instance's own is overwritten anyway; others are not ours
            try:
                modified = self._fs.modified(path)
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=timezone.utc)
                age = now - modified
                if age < STALE_STAGING_AGE:
                    continue  # perhaps another DAG run's export, still being written
                self._fs.rm_file(path)
            except Exception as exc:
                # Logged, not raised: a leftover must not stop a new export.
                log.warning("Could not remove the stale staged file %s (%s); delete it by hand", path, exc)
                continue
            log.info(
                "Removed %s: a staged copy of %s last written %s ago by an export that never finished "
                "(a killed worker)",
                path,
                self.uri,
                str(age).split(".")[0],
            )

    def open(self) -> IO[bytes]:
        """Open the temporary sibling for writing."""
        self._file = self._fs.open(self._temp, "wb", block_size=_WRITE_BLOCK_BYTES)
        return self._file

    def commit(self) -> None:
        """Close the temporary file and move it over the destination."""
        if self._file is not None:
            self._file.close()
        self._fs.mv(self._temp, self._final)
        self._committed = True

    def discard(self) -> None:
        """Remove the temporary sibling (best effort: the destination itself is never touched)."""
        if self._committed:
            return
        if self._file is not None:
            # Closing may upload what was buffered, but only ever to the temporary sibling.
            with contextlib.suppress(Exception):
                self._file.close()
        try:
            if self._fs.exists(self._temp):
                self._fs.rm_file(self._temp)
        except Exception:
            # Logged, not raised: the original error is the one the user needs to see.
            log.warning(
                "Could not remove the temporary file %s; delete it by hand", self._temp, exc_info=True
            )


def staging_name(name: str, token: str) -> str:
    """The hidden name a results file called ``name`` is staged under, beside it, until it is complete."""
    return f".{name}.runloop-{token}.partial"


def _base_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def staged_sibling_pattern(name: str) -> re.Pattern[str]:
    # Also the names of versions before 0.x (".<name>.<token>.partial"), so their leftovers go too.
    return re.compile(rf"\.{re.escape(name)}\.(?:runloop-)?[0-9a-f]{{16}}\.partial")


def staging_token(ti: object) -> str:
    """A token for one task instance's staged file: the same on each of its tries, new for another one
    (a random one outside Airflow)."""
    parts = [str(getattr(ti, name, "")) for name in ("dag_id", "task_id", "run_id", "map_index")]
    if not any(parts[:3]):
        return uuid.uuid4().hex[:16]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def check_destination_url(url: str) -> None:
    """Refuse a destination that cannot name one file: no scheme, a relative path, a directory."""
    parts = urlsplit(url)
    example = "'file:///data/results/run.jsonl' or 's3://bucket/results/run.jsonl'"
    if not parts.scheme:
        raise ValueError(f"destination must be a URL with a scheme, such as {example}; got {url!r}")
    if parts.scheme in _LOCAL_PROTOCOLS:
        if parts.netloc:
            raise ValueError(
                f"destination {url!r} is not an absolute file URL: write three slashes, "
                f"file:///absolute/path (got host {parts.netloc!r})"
            )
        if not parts.path.startswith("/"):
            raise ValueError(f"destination {url!r} must be an absolute path, such as {example}")
    elif not parts.netloc or parts.path.strip("/") == "":
        raise ValueError(f"destination {url!r} must name an object inside a bucket, such as {example}")
    if url.endswith("/"):
        raise ValueError(f"destination {url!r} ends with '/': name a file, such as {example}")


def check_filesystem(scheme: str, url: str) -> None:
    protocol = scheme or "file"
    if not has_fs(protocol):
        hint = (
            "install the Amazon provider: pip install 'airflow-provider-runloop[s3]'"
            if protocol in ("s3", "s3a", "s3n")
            else "install the Airflow provider that registers it"
        )
        raise ValueError(
            f"No filesystem is registered for {protocol}:// (destination {url!r}): {hint}. "
            "file:// works out of the box."
        )


def public_uri(path: ObjectStoragePath) -> str:
    """The destination as a URL without the connection id: the XCom value and the asset's URI."""
    protocol = path.protocol or "file"
    if protocol == "local":
        protocol = "file"
    return f"{protocol}://{path.path}"


def static_destination_uri(destination: str | ObjectStoragePath | None) -> str | None:
    """The destination's URL if it is known at parse time (given and not templated), else ``None``."""
    if isinstance(destination, ObjectStoragePath):
        return None if rendered_later(str(destination)) else public_uri(destination)
    if not isinstance(destination, str) or rendered_later(destination):
        return None
    parts = urlsplit(destination)
    # Drop a connection id given as user info (s3://aws_conn@bucket/key): it is not part of the data's name.
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
