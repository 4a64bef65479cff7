"""The local AWS endpoint with state that survives restarts: moto's server, kept on disk.

moto keeps everything in memory, so a plain ``moto_server`` starts empty after every restart
while Airflow's database still remembers the runs that were working on its objects. This
endpoint serves moto's own WSGI application and keeps its state in a folder:

``snapshot.pickle``
    moto's S3, SQS, SNS and EventBridge backends as of the last checkpoint, pickled as they
    are, so object version ids, ETags, queue contents and subscriptions come back unchanged.
    Object bodies are not in it: each is written once under ``blobs/`` and referenced.
``journal.bin``
    every state-changing request acknowledged since that checkpoint, written before its
    response is sent. After a crash (SIGKILL, power cut of the process) the journal is
    replayed on top of the snapshot, so no acknowledged write is lost.

A checkpoint is taken every ``--checkpoint-seconds`` while something changed, and on a clean
stop (SIGTERM or Ctrl-C), after which the journal starts empty. ``POST /moto-api/reset``
wipes the state as moto does and checkpoints at once, so a reset survives a restart too.

A replay gives back the same identifiers: every random number moto drew while serving a write
(version ids, upload ids, delete-marker ids, the message ids and event bodies of the S3
notifications it sent) is recorded in that write's journal entry and handed back, in order, when
the write is replayed. A client that was told a version id before the crash can still read,
copy or delete that version after it. What a replay does not repeat: SQS receives and deletes,
so messages sent in the seconds since the last checkpoint are delivered again (SQS is
at-least-once anyway; the pipeline's claim ledger makes a repeat a no-op); and timestamps, which
are those of the replay.

SQS long polls (``ReceiveMessage`` with ``WaitTimeSeconds``) are served by the endpoint, not by
moto: immediate receives, and between them a wait that any write ends, so a poll holds back no
write and gets a message the moment one is sent.

Three of moto's per-request costs are taken out at start-up (:func:`speed_up_moto`, same answers):
with them, a burst of 1,000 file events kept the endpoint busy mostly re-counting its own queue.

Run: ``python -m clean_zone_tools.devstack.endpoint --port 4566 --state-dir .state/endpoint``.

(Over 500 lines on purpose: the journal format, the snapshot pickler and the replay are one
crash-consistency protocol; reading them side by side is how it is checked.)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import pickle
import re
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.backends import get_backend
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import FakeKey
from moto.s3.utils import _VersionedKeyStore
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

LOG = logging.getLogger("clean_zone.endpoint")

SERVICES = ("s3", "sqs", "sns", "events")
SNAPSHOT_NAME = "snapshot.pickle"
JOURNAL_NAME = "journal.bin"
BLOBS_NAME = "blobs"
FORMAT_VERSION = 1

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST actions that change nothing worth keeping, or that a replay must not repeat: a receive
# hides messages and hands out receipt handles that a replay could not reproduce, so after a
# crash the messages of the last seconds are simply delivered again.
UNJOURNALED_ACTIONS = frozenset(
    {
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListQueues",
        "ListQueueTags",
        "ListDeadLetterSourceQueues",
        "GetTopicAttributes",
        "GetSubscriptionAttributes",
        "ListTopics",
        "ListSubscriptions",
        "ListSubscriptionsByTopic",
        "ListTagsForResource",
        "DescribeRule",
        "ListRules",
        "ListTargetsByRule",
        "DescribeEventBus",
        "ListEventBuses",
    }
)
RESET_PATH = "/moto-api/reset"
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_ACTION_FORM = re.compile(rb"(?:^|&)Action=([A-Za-z]+)")
_WAIT_FORM = re.compile(rb"(^|&)WaitTimeSeconds=([^&]*)")
MAX_WAIT_SECONDS = 20  # SQS's limit; a larger WaitTimeSeconds goes to moto, which rejects it
# How long a waiting long poll sleeps when no write wakes it: messages can also become visible
# with no write (an expired visibility timeout, a DelaySeconds running out).
POLL_FALLBACK_SECONDS = 0.25


def request_action(environ: dict[str, Any], body: bytes) -> str | None:
    """The API action of a JSON-protocol (``X-Amz-Target``) or query-protocol request."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    match = _ACTION_FORM.search(body[:4096]) if body else None
    if match:
        return match.group(1).decode()
    query = environ.get("QUERY_STRING", "")
    for part in query.split("&"):
        if part.startswith("Action="):
            return part.removeprefix("Action=")
    return None


def requested_wait(environ: dict[str, Any], body: bytes) -> int | None:
    """A ReceiveMessage's WaitTimeSeconds; None if absent, -1 if unreadable (moto rejects it)."""
    try:
        if environ.get("HTTP_X_AMZ_TARGET"):
            value = json.loads(body or b"{}").get("WaitTimeSeconds")
        else:
            match = _WAIT_FORM.search(body)
            value = match.group(2) if match else None
        return None if value is None else int(value)
    except (ValueError, TypeError, AttributeError):
        return -1


def immediate_receive(environ: dict[str, Any], body: bytes) -> bytes:
    """The same ReceiveMessage body with WaitTimeSeconds=0 (added if absent), all else as sent."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        return json.dumps({**json.loads(body or b"{}"), "WaitTimeSeconds": 0}).encode()
    if _WAIT_FORM.search(body):
        return _WAIT_FORM.sub(rb"\1WaitTimeSeconds=0", body)
    return body + b"&WaitTimeSeconds=0" if body else body


def has_messages(environ: dict[str, Any], payload: bytes) -> bool:
    """Whether a ReceiveMessage response holds a message (JSON ``Messages`` or XML ``<Message>``)."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        try:
            return bool(json.loads(payload).get("Messages"))
        except (ValueError, AttributeError):
            return False
    return b"<Message>" in payload


def is_journaled(method: str, path: str, action: str | None) -> bool:
    if method in READ_METHODS or path.startswith("/moto-api/"):
        return False
    return action not in UNJOURNALED_ACTIONS


# --- snapshots ------------------------------------------------------------------------------


class BlobStore:
    """Object bodies by SHA-256, written once; snapshots hold references, not bytes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # id(key) -> (etag, size, digest): a body already stored is not read again.
        self._known: dict[int, tuple[str, int, str]] = {}

    def path(self, digest: str) -> Path:
        return self.folder / digest

    def reference(self, key: FakeKey) -> str:
        marker = (str(key.etag), int(key.contentsize or 0))
        known = self._known.get(id(key))
        if known is not None and known[:2] == marker and self.path(known[2]).exists():
            return known[2]
        value = key.value
        digest = hashlib.sha256(value).hexdigest()
        target = self.path(digest)
        if not target.exists():
            partial = target.with_suffix(".partial")
            partial.write_bytes(value)
            partial.replace(target)
        self._known[id(key)] = (*marker, digest)
        return digest

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def keep_only(self, digests: set[str]) -> int:
        removed = 0
        for path in self.folder.iterdir():
            if path.name not in digests:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _new_lock(reentrant: bool) -> Any:
    return threading.RLock() if reentrant else threading.Lock()


def _rebuild_versioned_store(versions: dict[str, list[Any]]) -> _VersionedKeyStore:
    store = _VersionedKeyStore()
    for name, items in versions.items():
        store.setlist(name, items)
    return store


_LOADING_BLOBS: BlobStore | None = None


def _rebuild_key(cls: type[FakeKey], state: dict[str, Any], digest: str) -> FakeKey:
    assert _LOADING_BLOBS is not None
    key = cls.__new__(cls)
    key.__setstate__({**state, "value": _LOADING_BLOBS.read(digest)})
    return key


class _SnapshotPickler(pickle.Pickler):
    """Pickles moto's backends: locks become new locks, versioned key stores keep every
    version (their ``items()`` shows only the latest), and object bodies go to the blob store."""

    def __init__(self, handle: io.BufferedWriter, blobs: BlobStore) -> None:
        super().__init__(handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.blobs = blobs
        self.referenced: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return _new_lock, (isinstance(obj, type(threading.RLock())),)
        if isinstance(obj, _VersionedKeyStore):
            return _rebuild_versioned_store, ({name: dict.__getitem__(obj, name) for name in dict.keys(obj)},)
        if isinstance(obj, FakeKey):
            digest = self.blobs.reference(obj)
            self.referenced.add(digest)
            state = obj.__getstate__()
            state.pop("value", None)
            return _rebuild_key, (type(obj), state, digest)
        return NotImplemented


def _backend_state() -> dict[str, dict[str, dict[str, Any]]]:
    return {
        service: {account: dict(regions) for account, regions in get_backend(service).items()}
        for service in SERVICES
    }


def _install_state(state: dict[str, dict[str, dict[str, Any]]]) -> None:
    for service, accounts in state.items():
        backends = get_backend(service)
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backends[account][region] = backend


def reset_backends() -> None:
    for service in SERVICES:
        for regions in get_backend(service).values():
            for backend in regions.values():
                backend.reset()


# --- the journal ----------------------------------------------------------------------------

_HEADER = struct.Struct(">II")  # header length, body length


@dataclass
class JournalEntry:
    sequence: int
    method: str
    path: str  # PATH_INFO as the server decoded it
    raw_uri: str  # the request line's target, still percent-encoded, query included
    query: str
    headers: dict[str, str]
    body: bytes
    # moto's random draws while serving it, as (bits, value): the replay draws the same.
    draws: list[tuple[int, int]] = field(default_factory=list)
    # Identifiers the original response handed out (version id, upload id): the replay checks them.
    issued: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        header = json.dumps(
            {
                "seq": self.sequence,
                "method": self.method,
                "path": self.path,
                "raw_uri": self.raw_uri,
                "query": self.query,
                "headers": self.headers,
                "issued": self.issued,
                "draws": self.draws,
            }
        ).encode()
        return _HEADER.pack(len(header), len(self.body)) + header + self.body


def read_journal(path: Path) -> Iterator[JournalEntry]:
    """Entries in order; a record cut short by a crash mid-write ends the journal."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        while True:
            prefix = handle.read(_HEADER.size)
            if len(prefix) < _HEADER.size:
                return
            header_length, body_length = _HEADER.unpack(prefix)
            header_bytes = handle.read(header_length)
            body = handle.read(body_length)
            if len(header_bytes) < header_length or len(body) < body_length:
                LOG.warning("journal ends in a partial record (the endpoint stopped mid-write); ignored")
                return
            header = json.loads(header_bytes)
            yield JournalEntry(
                sequence=header["seq"],
                method=header["method"],
                path=header["path"],
                raw_uri=header["raw_uri"],
                query=header["query"],
                headers=header["headers"],
                body=body,
                issued=header.get("issued", {}),
                draws=[(int(bits), int(value)) for bits, value in header.get("draws", [])],
            )


def _issued_ids(headers: Iterable[tuple[str, str]], body: bytes) -> dict[str, str]:
    issued: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == "x-amz-version-id" and value != "null":
            issued["version_id"] = value
    match = _UPLOAD_ID.search(body[:8192]) if body else None
    if match:
        issued["upload_id"] = match.group(1).decode()
    return issued


# --- moto's randomness ----------------------------------------------------------------------


class RandomTape:
    """Records the randomness moto uses while serving a write, and plays it back on replay.

    moto makes its identifiers from one ``random.Random`` (``mock_random``, through
    ``getrandbits``) and multipart upload ids from ``os.urandom``. Reads use it too (request
    ids), in other threads, so draws are recorded and played back per thread: a replay, applied
    to the same state in the same order, takes the same path through moto and so makes the same
    ids. A draw is ``(bits, value)`` from ``getrandbits`` or ``(-bytes, value)`` from ``urandom``.
    """

    def __init__(self) -> None:
        self._bits = mock_random.getrandbits
        self._bytes = os.urandom
        self._local = threading.local()
        self.mismatches = 0

    def install(self) -> None:
        mock_random.getrandbits = self.getrandbits  # type: ignore[method-assign]
        os.urandom = self.urandom

    def getrandbits(self, bits: int) -> int:
        return self._take(bits, self._bits)

    def urandom(self, size: int) -> bytes:
        # Kept as an int so the journal header stays JSON; the size fixes its length.
        value = self._take(-size, lambda _: int.from_bytes(self._bytes(size)))
        return value.to_bytes(size)

    def _take(self, kind: int, draw: Callable[[int], int]) -> int:
        playback: list[tuple[int, int]] | None = getattr(self._local, "playback", None)
        if playback:
            recorded_kind, value = playback.pop()
            if recorded_kind == kind:
                return value
            # The replay left the recorded path: the rest of this request's draws are fresh.
            self.mismatches += 1
            playback.clear()
        value = draw(kind)
        recording: list[tuple[int, int]] | None = getattr(self._local, "recording", None)
        if recording is not None:
            recording.append((kind, value))
        return value

    def record(self) -> list[tuple[int, int]]:
        self._local.recording = []
        return self._local.recording

    def play(self, draws: list[tuple[int, int]]) -> None:
        self._local.playback = list(reversed(draws))

    def stop(self) -> None:
        self._local.recording = None
        self._local.playback = None


# --- the application ------------------------------------------------------------------------

_Response = tuple[str, list[tuple[str, str]], bytes]  # status line, headers, body


class DurableEndpoint:
    """moto's WSGI application with a journal in front of it and checkpoints behind it."""

    def __init__(self, state_dir: Path, app: Callable[..., Any] | None = None) -> None:
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.app = app or DomainDispatcherApplication(create_backend_app)
        self.blobs = BlobStore(state_dir / BLOBS_NAME)
        self.snapshot_path = state_dir / SNAPSHOT_NAME
        self.journal_path = state_dir / JOURNAL_NAME
        # Writes are applied and journaled one at a time, so the journal's order is the order
        # in which moto applied them; reads run beside them.
        self._write_lock = threading.Lock()
        # Notified (under the write lock) by every journaled write, which is what can bring a
        # message into a queue: a SendMessage, or a PutObject/Publish/PutEvents that sends one.
        self._written = threading.Condition(self._write_lock)
        self._sequence = 0
        self._checkpointed_sequence = 0
        self._journal = self.journal_path.open("ab")
        self.tape = RandomTape()
        self.tape.install()

    # -- start-up

    def restore(self) -> dict[str, float | int]:
        """Load the last checkpoint and replay the journal after it. Returns what it did."""
        global _LOADING_BLOBS  # noqa: PLW0603 - the unpickler's hook needs the store
        started = time.perf_counter()
        objects = 0
        if self.snapshot_path.exists():
            _LOADING_BLOBS = self.blobs
            try:
                with self.snapshot_path.open("rb") as handle:
                    saved = pickle.load(handle)  # noqa: S301 - our own file, written by checkpoint()
            finally:
                _LOADING_BLOBS = None
            if saved.get("format") != FORMAT_VERSION:
                raise RuntimeError(f"{self.snapshot_path}: unknown snapshot format {saved.get('format')!r}")
            _install_state(saved["backends"])
            self._sequence = self._checkpointed_sequence = int(saved["sequence"])
            objects = saved.get("objects", 0)
        loaded = time.perf_counter()
        replayed = self._replay()
        if replayed:
            self.checkpoint()
        return {
            "objects": objects,
            "replayed": replayed,
            "load_seconds": round(loaded - started, 3),
            "replay_seconds": round(time.perf_counter() - loaded, 3),
        }

    def _replay(self) -> int:
        count = 0
        for entry in list(read_journal(self.journal_path)):
            if entry.sequence <= self._checkpointed_sequence:
                continue  # already in the snapshot (stopped between its write and the truncation)
            self.tape.play(entry.draws)
            try:
                status, headers, body = self._call(entry)
            finally:
                self.tape.stop()
            if status >= 400:
                LOG.warning("replay: %s %s answered %s", entry.method, entry.path, status)
            elif (issued := _issued_ids(headers, body)) != entry.issued:
                LOG.warning(
                    "replay: %s %s made other ids than it first did (%s, now %s)",
                    entry.method,
                    entry.path,
                    entry.issued,
                    issued,
                )
            self._sequence = entry.sequence
            count += 1
        return count

    def _call(self, entry: JournalEntry) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send a journaled request to moto in-process, as the server first received it."""
        builder = EnvironBuilder(method=entry.method, headers=entry.headers, data=entry.body)
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        environ.update(
            PATH_INFO=entry.path,
            RAW_URI=entry.raw_uri,
            REQUEST_URI=entry.raw_uri,
            QUERY_STRING=entry.query,
        )
        if "Host" in entry.headers:
            environ["HTTP_HOST"] = entry.headers["Host"]
        app_iter, status, response_headers = run_wsgi_app(self.app, environ, buffered=True)
        payload = b"".join(app_iter)
        return int(status.split(" ", 1)[0]), list(response_headers.items()), payload

    # -- serving

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method in READ_METHODS:
            return self.app(environ, start_response)
        body = _read_body(environ)
        action = request_action(environ, body)
        wait = requested_wait(environ, body) if action == "ReceiveMessage" else -1
        # moto long-polls by looping inside the receive, which here would hold the write lock for
        # the whole wait and shut out the very write that should end it: the endpoint polls
        # instead. A receive with no WaitTimeSeconds is made explicit 0 for the same reason,
        # so a queue's ReceiveMessageWaitTimeSeconds default is ignored (served as a short poll).
        if wait is None or 0 < wait <= MAX_WAIT_SECONDS:
            status, headers, payload = self._long_poll(environ, body, wait or 0)
        else:
            with self._write_lock:
                status, headers, payload = self._apply(environ, body, action)
        start_response(status, headers)
        return [payload]

    def _long_poll(self, environ: dict[str, Any], body: bytes, wait: int) -> _Response:
        """Immediate receives until one brings messages or ``wait`` seconds are up."""
        immediate = immediate_receive(environ, body)
        deadline = time.monotonic() + wait
        with self._written:  # holds the write lock, except while wait() sleeps
            while True:
                response = self._apply(environ, immediate, "ReceiveMessage")
                left = deadline - time.monotonic()
                if left <= 0 or not response[0].startswith("2") or has_messages(environ, response[2]):
                    return response
                # The lock is held from the empty receive to here, so no write (and its
                # notification) can slip in between: a message sent now always wakes this poll.
                self._written.wait(min(POLL_FALLBACK_SECONDS, left))

    def _apply(self, environ: dict[str, Any], body: bytes, action: str | None) -> _Response:
        """Serve a non-read request with the write lock held, journaling it if it changed state."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        captured: dict[str, Any] = {}
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # The client's start_response is called once the answer is final (a long poll may
            # throw away several); what moto writes through write() is kept with its body.
            captured["status"], captured["headers"] = status, headers
            return written.append

        draws = self.tape.record()
        try:
            payload = b"".join(self.app(environ, capture))
        finally:
            self.tape.stop()
        payload = b"".join(written) + payload
        status_line = str(captured.get("status", "500 INTERNAL SERVER ERROR"))
        headers: list[tuple[str, str]] = captured.get("headers", [])
        status = int(status_line.split(" ", 1)[0])
        if status < 400 and is_journaled(method, path, action):
            self._sequence += 1
            entry = JournalEntry(
                sequence=self._sequence,
                method=method,
                path=path,
                raw_uri=environ.get("RAW_URI") or environ.get("REQUEST_URI") or path,
                query=environ.get("QUERY_STRING", ""),
                headers=_request_headers(environ),
                body=body,
                issued=_issued_ids(headers, payload),
                draws=draws,
            )
            self._journal.write(entry.encode())
            self._journal.flush()
            self._written.notify_all()
        elif path == RESET_PATH and status < 400:
            self._checkpoint_locked()
        return status_line, headers, payload

    @property
    def dirty(self) -> bool:
        return self._sequence != self._checkpointed_sequence

    def checkpoint(self) -> None:
        with self._write_lock:
            self._checkpoint_locked()

    def _checkpoint_locked(self) -> None:
        partial = self.snapshot_path.with_suffix(".partial")
        with partial.open("wb") as handle:
            pickler = _SnapshotPickler(handle, self.blobs)
            state = _backend_state()
            pickler.dump(
                {
                    "format": FORMAT_VERSION,
                    "sequence": self._sequence,
                    "backends": state,
                    "objects": _count_objects(state),
                    "written": time.time(),
                }
            )
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.snapshot_path)
        self._checkpointed_sequence = self._sequence
        self._journal.truncate(0)
        self._journal.seek(0)
        self.blobs.keep_only(pickler.referenced)

    def close(self) -> None:
        self.checkpoint()
        self._journal.close()


def _count_objects(state: dict[str, dict[str, dict[str, Any]]]) -> int:
    total = 0
    for regions in state.get("s3", {}).values():
        for backend in regions.values():
            for bucket in getattr(backend, "buckets", {}).values():
                total += sum(len(dict.__getitem__(bucket.keys, name)) for name in dict.keys(bucket.keys))
    return total


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_") and key != "HTTP_TRANSFER_ENCODING"
    }
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


# --- command line ---------------------------------------------------------------------------


def speed_up_moto() -> None:
    """Take three costs out of moto's every request, answers unchanged (found profiling a burst).

    * A received SQS message's retention check built all the queue's attributes, counting its
      messages (twice over each message's clock): every receive was quadratic in the queue's
      length, a third of the endpoint's time while 1,000 file events were drained.
    * Finding a request's service listed moto's package folder from disk, every request.
    * werkzeug logged every request line through ``logging``.
    """
    from moto import backends
    from moto.core.utils import unix_time
    from moto.sqs.models import Message, SQSBackend

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]

    def within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
        return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]

    SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def serialise_puts() -> None:
    """Apply moto's PutObjects one at a time, so that a conditional put is atomic, as on S3.

    moto checks ``If-None-Match`` / ``If-Match`` and then writes, in two steps: two runs racing to
    create the same ledger record could both be told they created it, which S3 never allows (a CI
    run caught two runs taking one manifest on the tests' plain moto server). The durable endpoint
    already applies every write one at a time; this makes any moto server do so for puts.
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "serialised", False):
        return
    put_object = S3Response.put_object
    lock = threading.Lock()

    def serialised_put_object(self: S3Response) -> Any:
        with lock:
            return put_object(self)

    serialised_put_object.serialised = True  # type: ignore[attr-defined]
    S3Response.put_object = serialised_put_object  # type: ignore[method-assign]


def serve(host: str, port: int, state_dir: Path, checkpoint_seconds: float) -> int:
    speed_up_moto()
    serialise_puts()
    endpoint = DurableEndpoint(state_dir)
    restored = endpoint.restore()
    print(
        f"endpoint: state {state_dir}: {restored['objects']} object versions restored "
        f"in {restored['load_seconds']} s, {restored['replayed']} journaled requests replayed "
        f"in {restored['replay_seconds']} s",
        flush=True,
    )
    server = make_server(host, port, endpoint, threaded=True, request_handler=MotoRequestHandler)
    stopping = threading.Event()

    def checkpoint_loop() -> None:
        while not stopping.wait(checkpoint_seconds):
            if endpoint.dirty:
                try:
                    endpoint.checkpoint()
                except Exception:  # a failed checkpoint leaves the journal: nothing is lost
                    LOG.exception("checkpoint failed; the journal keeps every change")

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    checkpointer = threading.Thread(target=checkpoint_loop, name="checkpoint", daemon=True)
    checkpointer.start()
    print(f"endpoint: serving on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        stopping.set()
        endpoint.close()
        print("endpoint: state saved", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.devstack.endpoint",
        description="The local AWS endpoint (moto: S3, SNS, SQS, EventBridge) with its state kept "
        "in a folder, so a restart or a crash loses nothing.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=4566, help="port to listen on")
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for the snapshot and journal")
    parser.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=2.0,
        help="how often a changed state is written as a new snapshot (the journal covers the gap)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return serve(args.host, args.port, args.state_dir, args.checkpoint_seconds)


if __name__ == "__main__":
    sys.exit(main())
