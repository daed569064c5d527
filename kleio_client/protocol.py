"""The wire protocol shared by the client, the supervisor, the daemon and the CLI.

Every message is one msgpack map with a protocol version ``v`` and a type
``t``.  Two channels exist:

* **ingest** (DEALER -> daemon ROUTER): producers (client processes and
  supervisors) send ``records`` batches numbered by per-producer sequence
  numbers, ``blob`` chunks of artifacts, ``sync`` and ``query`` messages.  The
  daemon answers ``ack`` (everything up to ``seq`` of that producer is
  committed), ``blob_ack``, ``reply`` and ``refused``.
* **publish** (daemon PUB -> SUB): ``live`` chunks of committed output and
  statistics on the topic ``trial.<id>.<kind>``, numbered per topic.
* **control** (DEALER -> daemon ROUTER): request/reply, ``{"v", "t": "request",
  "id", "cmd", "args"}`` answered by ``{"v", "t": "reply", "id", "ok",
  "result"}`` or ``{..., "ok": False, "error": {"code", "message"}}``.

Beside the messages, what every side must judge alike: the statuses, the
``--where`` filter's comparisons, the order records sort in, the fingerprint
fields, the supervisor's spec and the environment it gives its trial.  Nothing
else is shared between the packages (``kleio_runtime`` holds the configuration,
lock and launcher that the CLI, the daemon and the supervisor use).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import operator
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import msgpack

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_RECORDS_PER_MESSAGE = 65536
# Segments per `columns` request: {"trial", "position", "start", "end"} maps, as `stats`
# with `segments` gave them, and `where`, a list of [key, op, value] (see kleiod.columns).
MAX_PAGE_SEGMENTS = 256
BLOB_CHUNK_BYTES = 1024 * 1024

# Environment the supervisor gives the trial process: which trial it is and where to send
# its records (never inherited: stripped from what a trial's own children would pass on)...
ENV_TRIAL = "KLEIO_TRIAL_ID"
ENV_EXECUTION = "KLEIO_EXECUTION"
ENV_INGEST = "KLEIO_INGEST_ENDPOINT"
TRIAL_ENVIRONMENT = (ENV_TRIAL, ENV_EXECUTION, ENV_INGEST)
# ... and the client's settings, as kleio_runtime.config resolved them for the supervisor.
ENV_RUNTIME_DIR = "KLEIO_RUNTIME_DIR"
ENV_FLUSH_TIMEOUT = "KLEIO_FLUSH_TIMEOUT"
ENV_BUFFER_BYTES = "KLEIO_BUFFER_BYTES"
# The repository root the CLI captured: the client reports the files under it that its
# process imported (empty outside git: nothing is reported).
ENV_PROJECT_ROOT = "KLEIO_PROJECT_ROOT"
DEFAULT_FLUSH_TIMEOUT = 30.0  # seconds a producer waits for acknowledgements at exit
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024  # unacknowledged bytes held before spilling

# Trial statuses (DESIGN.md), and the branch kind of a `kleio pdb` session: hidden, never
# resumed.
STATUSES = ("new", "running", "completed", "interrupted", "broken", "lost")
SCRATCH = "scratch"

# Which fields of a capture make the code and the environment fingerprints: the defaults,
# and every field that `[fingerprint]` may name (sent with a reservation as chosen).
# "imported": the content of the files the trial ran (its clients report them); a trial
# none of whose executions reported any is compared by the fallback fields instead.
CODE_FIELDS = ("imported",)
FALLBACK_CODE_FIELDS = ("commit", "patch", "untracked")
ENVIRONMENT_FIELDS = ("python", "packages", "os", "resources")
FINGERPRINT_FIELDS = {
    "code": frozenset(CODE_FIELDS + FALLBACK_CODE_FIELDS + ("untracked_config",)),
    "environment": frozenset(ENVIRONMENT_FIELDS + ("gpu", "hostname", "user", "variables")),
}

# Ingest message types.
RECORDS = "records"
BLOB = "blob"
SYNC = "sync"
SPILLED = "spilled"
QUERY = "query"
ACK = "ack"
BLOB_ACK = "blob_ack"
REPLY = "reply"
REFUSED = "refused"
# Publish message type: committed records for followers.
LIVE = "live"
# Control message type.
REQUEST = "request"

# Record kinds in the journal.
STATISTIC = "statistic"
ARTIFACT = "artifact"
OUTPUT = "output"
RESOURCE = "resource"
LOAD = "load"
# A process of the trial received SIGINT or SIGTERM ({"signal": "SIGTERM", "pid": 42}): an
# exit status of 130 or 143 is then the interruption's, passed on by a launcher or a shell.
# Sent as a query of that name (an older daemon refuses it alone), journaled as a record.
SIGNAL = "signal"
# A client's report of the project's files its process imported (its script among them):
# {"files": {path relative to the project root: sha256 of the content}}, each file once
# per process, in reports of at most MAX_IMPORTED_FILES.  Sent as a query of that name (an
# older daemon refuses it alone), journaled as a record of the execution.
IMPORTED = "imported"
MAX_IMPORTED_FILES = 1024

# Error codes carried by replies; the CLI maps them to exit statuses.
E_NOT_FOUND = "not_found"
E_AMBIGUOUS = "ambiguous_id"
E_ALREADY_RUNNING = "already_running"
E_COMPLETED = "completed"
E_CHANGED = "changed"
E_BAD_REQUEST = "bad_request"
E_VERSION = "protocol_version"
E_STORAGE = "storage"
E_INTERNAL = "internal"

# Socket file names inside the runtime directory.
CONTROL_SOCKET = "control.sock"
INGEST_SOCKET = "ingest.sock"
PUBLISH_SOCKET = "publish.sock"


SOCKET_PATH_LIMIT = 107  # bytes in a Unix socket path (sun_path), on Linux


def default_runtime_dir(env: Any = None) -> str:
    """Where the daemon's sockets are: $KLEIO_RUNTIME_DIR, else $XDG_RUNTIME_DIR/kleio, or
    a private directory under the temp dir on batch nodes (no XDG_RUNTIME_DIR, or one too
    deep for socket paths)."""
    env = os.environ if env is None else env
    if env.get("KLEIO_RUNTIME_DIR"):
        return str(env["KLEIO_RUNTIME_DIR"])
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        candidate = os.path.join(xdg, "kleio")
        if _fits(candidate):
            return candidate
    import tempfile

    private = f"kleio-{os.getuid()}"
    tmp = env.get("TMPDIR")
    candidate = os.path.join(tmp if tmp and os.path.isdir(tmp) else tempfile.gettempdir(), private)
    # A long TMPDIR (a job's scratch directory) would push socket paths past the limit.
    return candidate if _fits(candidate) else os.path.join("/tmp", private)


def _fits(runtime_dir: str) -> bool:
    """Whether the sockets' paths in ``runtime_dir`` stay under the Unix limit."""
    return len(os.fsencode(runtime_dir)) + len("/publish.sock") + 8 < SOCKET_PATH_LIMIT


class ProtocolError(ValueError):
    """A frame that is not a valid Kleio message."""


class ClientSettings(NamedTuple):
    """A trial's client's settings, from the environment its supervisor gave it."""

    flush_timeout: float
    buffer_bytes: int
    project_root: str | None = None  # whose imported files the client reports

    @classmethod
    def of(cls, env: Any = None) -> ClientSettings:
        env = os.environ if env is None else env
        return cls(
            _number(env.get(ENV_FLUSH_TIMEOUT), float, DEFAULT_FLUSH_TIMEOUT),
            _number(env.get(ENV_BUFFER_BYTES), int, DEFAULT_BUFFER_BYTES),
            env.get(ENV_PROJECT_ROOT) or None,
        )


def _number(text: Any, kind: Callable[[Any], Any], default: Any) -> Any:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        return default
    return value if value >= 0 else default


@dataclass(frozen=True)
class SupervisorSpec:
    """What a supervisor is started with, by the CLI or (``spawn``) by the daemon."""

    trial_id: str
    execution: int
    argv: list[str]
    cwd: str
    runtime_dir: str
    lease_seconds: float
    detached: bool = False  # started by the daemon: output to the journal only
    escalate: bool = True  # a second Ctrl-C within its kill window kills (not under pdb)
    # The trial's client's settings, resolved with the rest by the CLI.
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    # TensorBoard scalars journaled as statistics, through the trial's start-up hook.
    capture_tensorboard: bool = True
    # The repository root the CLI captured (None outside git).
    project_root: str | None = None

    @property
    def client_settings(self) -> ClientSettings:
        return ClientSettings(self.flush_timeout, self.buffer_bytes, self.project_root)

    def trial_environment(self) -> dict[str, str]:
        """What the supervisor adds to its trial's environment, for kleio_client."""
        return {
            ENV_TRIAL: self.trial_id,
            ENV_EXECUTION: str(self.execution),
            ENV_RUNTIME_DIR: self.runtime_dir,
            ENV_FLUSH_TIMEOUT: repr(self.flush_timeout),
            ENV_BUFFER_BYTES: str(self.buffer_bytes),
            ENV_PROJECT_ROOT: self.project_root or "",
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SupervisorSpec:
        return cls(**json.loads(text))


class Endpoints(NamedTuple):
    """The daemon's three ipc endpoints, derived from its runtime directory."""

    control: str
    ingest: str
    publish: str

    @classmethod
    def in_directory(cls, runtime_dir: str) -> Endpoints:
        def ipc(name: str) -> str:
            return "ipc://" + os.path.join(runtime_dir, name)

        return cls(ipc(CONTROL_SOCKET), ipc(INGEST_SOCKET), ipc(PUBLISH_SOCKET))


def pack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def unpack(frame: bytes, limit: int | None = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Decode one frame, refusing anything that is not a current message.

    ``limit`` bounds what the daemon accepts; its replies (a whole journal's
    output, say) may be larger.
    """
    if limit is not None and len(frame) > limit:
        raise ProtocolError(f"message of {len(frame)} bytes exceeds {limit}")
    try:
        message = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable message: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("message is not a map with a type")
    if message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {message.get('v')!r} is not {PROTOCOL_VERSION}; "
            "upgrade kleio so that client and daemon match"
        )
    return message


def records(
    trial: str, execution: int, producer: str, first_seq: int, items: bytes
) -> dict[str, Any]:
    """A batch of journal records numbered from ``first_seq``.

    ``items`` is the msgpack encoding of a list of ``[kind, body]`` pairs, kept
    packed so that the daemon can store it as received.
    """
    return {
        "v": PROTOCOL_VERSION,
        "t": RECORDS,
        "trial": trial,
        "execution": execution,
        "producer": producer,
        "seq": first_seq,
        "records": items,
    }


def spilled(trial: str, execution: int, producer: str, path: str) -> dict[str, Any]:
    """The producer's oldest unacknowledged messages are in the spill file at ``path``:
    read them before what follows."""
    return {
        "v": PROTOCOL_VERSION,
        "t": SPILLED,
        "trial": trial,
        "execution": execution,
        "producer": producer,
        "path": path,
    }


def sync(trial: str, execution: int, producer: str, seq: int) -> dict[str, Any]:
    """Ask for an ``ack`` once everything up to ``seq`` is committed."""
    return {
        "v": PROTOCOL_VERSION,
        "t": SYNC,
        "trial": trial,
        "execution": execution,
        "producer": producer,
        "seq": seq,
    }


# -- the records frame, written as ``pack(records(...))`` would write it -------------------

_ARRAY16 = b"\xdc"
_BIN32 = b"\xc6"
_EMPTY_ITEMS = msgpack.packb("records") + msgpack.packb(b"", use_bin_type=True)
# A packed record is [kind, body]: a fixed 2-array header and the packed kind, then the body.
RECORD_PREFIXES = {
    kind: b"\x92" + msgpack.packb(kind) for kind in (STATISTIC, ARTIFACT, OUTPUT, RESOURCE)
}
_STATISTIC_PREFIX = RECORD_PREFIXES[STATISTIC]

# A record waiting to be framed: a statistic's packed body (the client's hot path: no
# prefix, no tuple), or another kind's (prefix, packed body) pair.
PackedRecord = bytes | tuple[bytes, bytes]


def records_frame(
    trial: str, execution: int, producer: str, first_seq: int, items: list[PackedRecord]
) -> bytes:
    """The packed ``records`` message of ``items``, the records copied once, straight into
    it: the message packed with empty items, its last field then replaced by the items'
    header and the items themselves."""
    head = pack(records(trial, execution, producer, first_seq, b""))
    if not head.endswith(_EMPTY_ITEMS):  # not the layout this relies on: pack it all
        return pack(records(trial, execution, producer, first_seq, packed_items(items)))
    count = len(items)
    size = 3 + count * len(_STATISTIC_PREFIX) + sum(map(len, items))  # array16 header too
    head = head[:-2] + _BIN32 + size.to_bytes(4, "big") + _ARRAY16 + count.to_bytes(2, "big")
    try:
        return _STATISTIC_PREFIX.join([head, *items])
    except TypeError:  # other kinds among them (as pairs): they are rare
        return pack(records(trial, execution, producer, first_seq, packed_items(items)))


def packed_list(count: int, packed_pairs: bytes) -> bytes:
    """``count`` already packed [kind, body] records as one packed list: how the daemon
    cuts a message's records into chunks of one kind without decoding them."""
    return msgpack.Packer().pack_array_header(count) + packed_pairs


def chunk_records(body: bytes, start: int, end: int, use_list: bool = True) -> list[Any]:
    """The records ``start`` to ``end`` of a stored chunk (a packed list of [kind, record]
    pairs, as :func:`packed_list` makes it), in one C call (``use_list=False``: nested
    lists as tuples, a little faster)."""
    pairs = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=use_list)
    return list(map(operator.itemgetter(1), pairs[start:end]))


def record_keys(records: list[dict[str, Any]]) -> list[str]:
    """The keys of records of any shapes, in order of first appearance (a record whose
    keys were all seen costs one set comparison)."""
    keys: dict[str, None] = {}
    for record in records:
        if not keys.keys() >= record.keys():
            keys.update(dict.fromkeys(record))
    return list(keys)


def packed_items(items: list[PackedRecord]) -> bytes:
    """``items`` as one packed list of [kind, body] records (at most 65535)."""
    return (
        _ARRAY16
        + len(items).to_bytes(2, "big")
        + b"".join(
            b"".join(item) if isinstance(item, tuple) else _STATISTIC_PREFIX + item
            for item in items
        )
    )


def blob(upload: str, offset: int, data: bytes, last: bool) -> dict[str, Any]:
    """One chunk of an artifact's bytes; ``last`` closes the upload."""
    return {
        "v": PROTOCOL_VERSION,
        "t": BLOB,
        "upload": upload,
        "offset": offset,
        "data": data,
        "last": last,
    }


def query(
    trial: str, execution: int, producer: str, req: int, name: str, args: dict[str, Any]
) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "t": QUERY,
        "trial": trial,
        "execution": execution,
        "producer": producer,
        "req": req,
        "name": name,
        "args": args,
    }


def ack(producer: str, seq: int) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "t": ACK, "producer": producer, "seq": seq}


def blob_ack(
    upload: str, offset: int, sha256: str | None, error: str | None = None
) -> dict[str, Any]:
    """Bytes of ``upload`` stored up to ``offset`` (all of them, when ``sha256`` is set);
    with ``error``, the upload is lost and must start again."""
    return {
        "v": PROTOCOL_VERSION,
        "t": BLOB_ACK,
        "upload": upload,
        "offset": offset,
        "sha256": sha256,
        "error": error,
    }


def answer(req: int, result: Any) -> dict[str, Any]:
    """The daemon's answer to a producer's ``query``."""
    return {"v": PROTOCOL_VERSION, "t": REPLY, "req": req, "result": result}


def refused(code: str, message: str, req: int | None = None) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "t": REFUSED,
        "req": req,
        "error": {"code": code, "message": message},
    }


def request(req_id: int, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "t": REQUEST, "id": req_id, "cmd": cmd, "args": args}


def reply(req_id: Any, result: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "t": REPLY, "id": req_id, "ok": True, "result": result}


def error_reply(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "t": REPLY,
        "id": req_id,
        "ok": False,
        "error": {"code": code, "message": message},
    }


def live_topic(trial_id: str, kind: str) -> bytes:
    return f"trial.{trial_id}.{kind}".encode()


def live(boot: str, number: int, position: int, execution: int, records: bytes) -> dict[str, Any]:
    """Chunk ``number`` of its topic as numbered by the daemon started as ``boot``, its
    first record at ``position``; ``records`` packs its [kind, body] pairs."""
    return {
        "v": PROTOCOL_VERSION,
        "t": LIVE,
        "boot": boot,
        "n": number,
        "position": position,
        "execution": execution,
        "records": records,
    }


# -- filters and order: judged alike by the daemon, the CLI and the client -----------------

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda value, options: value in options,
    "contains": lambda value, part: part in value,
}


@dataclass(frozen=True)
class Condition:
    """One ``where`` term, sent as ``[key, op, value]``: a record or a trial without the
    key matches only ``ne``, and so does a value that does not compare."""

    key: str
    op: str
    value: Any

    def holds(self, values: dict[str, Any]) -> bool:
        if self.key not in values:
            return self.op == "ne"
        try:
            return bool(COMPARISONS[self.op](values[self.key], self.value))
        except TypeError:
            return self.op == "ne"


def conditions(filters: dict[str, Any]) -> list[Condition]:
    """``{"lr__gt": 0.01, "split": "val"}`` as conditions (``key__op``; a suffix that
    names no operator is part of the key, compared for equality)."""
    parsed = []
    for name, value in filters.items():
        key, _, op = name.rpartition("__")
        if not key or op not in COMPARISONS:
            key, op = name, "eq"
        parsed.append(Condition(key, op, value))
    return parsed


def options(configuration: Any) -> dict[str, Any]:
    """A captured configuration's options by name without dashes, ``-`` as ``_``: what
    ``lr=0.1`` and ``batch_size__gt=8`` filter on; then the values of the configuration
    files it names, by dotted name (``optimizer.lr``), where the command line does not
    set the same name; none without a configuration."""
    if not isinstance(configuration, dict):
        return {}
    found: dict[str, Any] = {}
    files = configuration.get("files")
    for file in files.values() if isinstance(files, dict) else ():
        values = file.get("values") if isinstance(file, dict) else None
        if isinstance(values, dict):
            found.update(values)
    given = configuration.get("options")
    if isinstance(given, dict):
        found.update(
            {str(name).lstrip("-").replace("-", "_"): value for name, value in given.items()}
        )
    return found


ABSENT = object()  # a record without the key being sorted on


def sort_rank(value: Any) -> tuple[int, Any]:
    """How records sort by a key, everywhere (`kleio stats --sort`, ``Trial.statistics``):
    numbers by value, then strings, then NaN, then other values (by repr), then records
    without the key."""
    if value is ABSENT:
        return (4, 0)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, float):
        return (2, 0)
    return (3, repr(value))


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Decoding or reading a large history makes millions of small objects, none cyclic:
    the cyclic garbage collector would walk the growing heap again and again (2.4x
    slower).  Paused for the call only, and restored as it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
