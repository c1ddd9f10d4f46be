"""Deliveries handed from SMTP worker processes to the one process that commits them.

With ``[smtp] processes`` above 1, extra postel processes serve port 25 beside the main
one (docs/adr/0005-smtp-worker-processes.md). They run the SMTP dialogue, the sender
checks and the MIME parse, and write blob files themselves, but every
``Store.deliver`` goes to the main process over a socketpair, so one group-committing
writer serves them all (SQLite has one writer; the main process also tells IMAP IDLE
sessions about the new mail). A worker answers 250 only when the main process has
replied that the transaction is committed, so the durability point is unchanged.

Wire format, both directions: frames of a 4-octet big-endian length and a JSON object.

- worker -> main: ``{"id": N, "op": "deliver", "deliveries": [...]}``,
  ``{"id": N, "op": "call", "method": NAME, "args": PICKLE}`` (one of the other store
  methods a worker uses, ``WORKER_STORE_CALLS``: a worker has no database connection
  of its own), ``{"id": 0, "op": "wake"}`` (new mail in the outbound queue) and
  ``{"id": 0, "op": "up"}`` (its listeners accept connections);
- main -> worker: ``{"op": "ready"}`` once its store is open, then
  ``{"id": N, "delivered": [...]}``, ``{"id": N, "result": PICKLE}`` or
  ``{"id": N, "error": KIND, "message": TEXT}``.

PICKLE is base64 of a pickle, read with ``loads``: it may name only a few plain
standard types and the dataclasses and enumerations of the store's API modules
(``_DATA_MODULES``), so a worker that parses hostile mail cannot make the main process
run anything by what it sends.

The socketpair is made by the main process before it starts the worker: no path, no
other process can connect. Spec: RELIABILITY.md D1 (250 after commit).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import enum
import importlib
import io
import logging
import pickle
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

from postel import fastjson
from postel.errors import AlreadyExists, NotFound, StoreBusy, StoreError
from postel.ids import AccountId, MailboxId, QueueId
from postel.store import BlobRef, Delivered, Delivery, OverQuota, Store

__all__ = [
    "IPC_FRAME_MAX",
    "WORKER_STORE_CALLS",
    "DeliveryClient",
    "DeliveryServer",
    "IpcClosed",
    "decode_deliveries",
    "dumps",
    "encode_deliveries",
    "loads",
]

log = logging.getLogger(__name__)

IPC_FRAME_MAX = 256 * 1024 * 1024
"""Largest frame accepted (octets). A delivery request carries one message's blob
(inline only up to ``limits.BLOB_INLINE_MAX``) and MIME summary once, and per
recipient its trace fields; a pathological MIME structure can make the summary larger
than the message. A request that would exceed this is refused by the worker before it
is sent (StoreError: the client gets a temporary failure), never sent."""
_LENGTH = struct.Struct("!I")
_ERRORS: dict[str, type[StoreError]] = {
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "over_quota": OverQuota,
    "store_busy": StoreBusy,
    "store": StoreError,
}


WORKER_STORE_CALLS = frozenset(
    {
        "add_dmarc_evaluations",
        "add_received_dmarc_report",
        "enqueue",
        "get_account",
        "get_domain",
        "list_accounts",
        "list_domains",
        "list_mailboxes",
        "lookup_addresses",
        "quota_usages",
    }
)
"""The ``Store`` coroutine methods a port-25 worker calls through the main process
(directory and quota reads, forwarding's queue entries, DMARC records); the main
process answers no other name."""

_PLAIN_TYPES = {
    ("builtins", "frozenset"),
    ("builtins", "set"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
}
_DATA_MODULES = frozenset(
    {
        "postel.store.api",
        "postel.store.dmarc_api",
        "postel.store.queue_api",
        "postel.store.quota_api",
        "postel.smtp.params",
    }
)
"""Where the arguments and results of ``WORKER_STORE_CALLS`` are defined: frozen
dataclasses and enumerations, whose construction only stores and checks values."""


class IpcClosed(StoreError):
    """The committing process is gone: nothing more can be delivered."""


class _Unpickler(pickle.Unpickler):
    """Names only the plain types of ``_PLAIN_TYPES`` and the dataclasses and
    enumerations defined in ``_DATA_MODULES``: no function, no class imported into a
    module, no dotted path through a module's attributes (``asyncio.subprocess...``),
    so no ``os.system``, ``subprocess.Popen`` or file object through a crafted pickle."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_TYPES:
            return super().find_class(module, name)
        if module in _DATA_MODULES and name.isidentifier():
            found = getattr(importlib.import_module(module), name, None)
            if (
                isinstance(found, type)
                and found.__module__ == module
                and found.__qualname__ == name
                and (dataclasses.is_dataclass(found) or issubclass(found, enum.Enum))
            ):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} may not cross the worker channel")


def dumps(value: object) -> str:
    """``value`` as a PICKLE field (base64 text)."""
    return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def loads(text: object) -> Any:
    """The inverse of ``dumps``. Raises ValueError for anything else, including a pickle
    that names a function or a class outside postel and ``_PLAIN_TYPES``."""
    if not isinstance(text, str):
        raise ValueError("PICKLE field is not text")
    try:
        return _Unpickler(io.BytesIO(base64.b64decode(text, validate=True))).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as exc:
        raise ValueError(f"bad PICKLE field: {type(exc).__name__}: {exc}") from exc


# -- codec --------------------------------------------------------------------------------


def encode_deliveries(deliveries: Sequence[Delivery]) -> dict[str, Any]:
    """``Delivery`` objects as one JSON value (bytes in base64). The copies of one
    message (one per recipient) share their blob and summary, which are written once:
    ``blobs`` (key -> [size, inline or None]), ``summaries`` and ``items``."""
    blobs: dict[str, list[Any]] = {}
    summaries: dict[str, int] = {}
    items = []
    for d in deliveries:
        if d.blob.key not in blobs or (blobs[d.blob.key][1] is None and d.blob.inline):
            inline = None if d.blob.inline is None else base64.b64encode(d.blob.inline).decode()
            blobs[d.blob.key] = [d.blob.size, inline]
        index = summaries.setdefault(d.summary, len(summaries))
        items.append(
            {
                "account_id": d.account_id,
                "mailbox": d.mailbox,
                "blob": d.blob.key,
                "summary": index,
                "trace_prefix": base64.b64encode(d.trace_prefix).decode(),
                "internal_date": d.internal_date.isoformat(),
                "flags": sorted(d.flags),
                "queue_id": d.queue_id,
            }
        )
    return {"blobs": blobs, "summaries": list(summaries), "items": items}


def decode_deliveries(value: Any) -> list[Delivery]:
    """The inverse of ``encode_deliveries``. Raises ValueError (or KeyError, TypeError)
    for anything else."""
    if not isinstance(value, dict):
        raise ValueError("deliveries: not an object")
    blobs, summaries, items = value["blobs"], value["summaries"], value["items"]
    if not isinstance(blobs, dict) or not isinstance(summaries, list):
        raise ValueError("deliveries: malformed")
    refs = {
        str(key): BlobRef(
            str(key), int(size), None if inline is None else base64.b64decode(inline, validate=True)
        )
        for key, (size, inline) in blobs.items()
    }
    out = []
    for v in items:
        internal_date = dt.datetime.fromisoformat(v["internal_date"])
        if internal_date.tzinfo is None:
            raise ValueError("internal_date without a time zone")
        out.append(
            Delivery(
                account_id=AccountId(int(v["account_id"])),
                mailbox=str(v["mailbox"]),
                blob=refs[str(v["blob"])],
                trace_prefix=base64.b64decode(v["trace_prefix"], validate=True),
                internal_date=internal_date,
                summary=str(summaries[int(v["summary"])]),
                flags=frozenset(str(f) for f in v["flags"]),
                queue_id=None if v["queue_id"] is None else QueueId(str(v["queue_id"])),
            )
        )
    return out


def _encode_delivered(delivered: Sequence[Delivered]) -> list[list[Any]]:
    return [
        [d.account_id, d.mailbox_id, d.uidvalidity, d.uid, d.modseq, d.duplicate] for d in delivered
    ]


def _decode_delivered(values: Any) -> list[Delivered]:
    return [
        Delivered(AccountId(a), MailboxId(m), int(v), int(u), int(s), bool(dup))
        for a, m, v, u, s, dup in values
    ]


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame's object, or None at a clean end of stream. Raises ValueError for
    an oversized or malformed frame."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError:
        return None
    (length,) = _LENGTH.unpack(head)
    if length > IPC_FRAME_MAX:
        raise ValueError(f"IPC frame of {length} octets exceeds {IPC_FRAME_MAX}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None
    value = fastjson.loads(body)
    if not isinstance(value, dict):
        raise ValueError("IPC frame is not an object")
    return value


def _frame(value: dict[str, Any]) -> bytes:
    body = fastjson.dumps(value)
    return _LENGTH.pack(len(body)) + body


# -- main process side --------------------------------------------------------------------


class DeliveryServer:
    """Serves one worker's connection: its deliveries go to ``store.deliver`` (group
    committed with everyone else's), ``wake`` calls ``on_wake``."""

    def __init__(
        self,
        store: Store,
        on_wake: Callable[[], None] | None = None,
        on_up: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._on_wake = on_wake
        self._on_up = on_up
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, sock: socket.socket) -> None:
        """Say ready, then answer requests until the worker closes its end."""
        reader, writer = await asyncio.open_connection(sock=sock, limit=IPC_FRAME_MAX)
        lock = asyncio.Lock()
        writer.write(_frame({"op": "ready"}))
        try:
            while True:
                try:
                    request = await _read_frame(reader)
                except ConnectionError as exc:  # the worker died (kill -9, crash)
                    log.info("ipc.worker_gone", extra={"error": type(exc).__name__})
                    break
                except (ValueError, OSError) as exc:
                    log.warning("ipc.bad_frame", extra={"error": str(exc)[:200]})
                    break
                if request is None:
                    break
                task = asyncio.create_task(self._answer(request, writer, lock))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await task
            writer.close()

    async def _answer(
        self, request: dict[str, Any], writer: asyncio.StreamWriter, lock: asyncio.Lock
    ) -> None:
        ident = request.get("id")
        if request.get("op") in ("wake", "up"):
            callback = self._on_wake if request.get("op") == "wake" else self._on_up
            if callback is not None:
                callback()
            return
        reply: dict[str, Any]
        try:
            if request.get("op") == "call":
                reply = {"id": ident, "result": dumps(await self._call(request))}
            else:
                deliveries = decode_deliveries(request.get("deliveries"))
                delivered = await self._store.deliver(deliveries)
                reply = {"id": ident, "delivered": _encode_delivered(delivered)}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"id": ident, "error": "store", "message": f"bad request: {exc}"[:500]}
        except StoreError as exc:
            kind = next((k for k, t in _ERRORS.items() if type(exc) is t), "store")
            reply = {"id": ident, "error": kind, "message": str(exc)[:500]}
        async with lock:
            if writer.is_closing():
                return  # the worker is gone: its session learns nothing (the commit stands)
            with contextlib.suppress(OSError):
                writer.write(_frame(reply))
                await writer.drain()

    async def _call(self, request: dict[str, Any]) -> object:
        method = request.get("method")
        if method not in WORKER_STORE_CALLS:
            raise ValueError(f"{str(method)[:60]!r} is not a store call for workers")
        args, kwargs = loads(request.get("args"))
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise ValueError("call arguments: not (tuple, dict)")
        return await getattr(self._store, str(method))(*args, **kwargs)


# -- worker side --------------------------------------------------------------------------


class DeliveryClient:
    """The worker's end: ``deliver`` returns once the main process committed."""

    def __init__(self) -> None:
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        """Set when the main process's end is gone (the worker should stop)."""

    async def connect(self, sock: socket.socket) -> None:
        """Attach to the socket and wait for the main process's ``ready``."""
        reader, self._writer = await asyncio.open_connection(sock=sock, limit=IPC_FRAME_MAX)
        first = await _read_frame(reader)
        if first is None or first.get("op") != "ready":
            raise IpcClosed("the main process closed the delivery channel")
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while (reply := await _read_frame(reader)) is not None:
                future = self._pending.pop(int(reply.get("id", -1)), None)
                if future is None or future.done():
                    continue
                if "error" in reply:
                    error = _ERRORS.get(str(reply["error"]), StoreError)
                    future.set_exception(error(str(reply.get("message", ""))))
                elif "result" in reply:
                    try:
                        future.set_result(loads(reply["result"]))
                    except ValueError as exc:
                        future.set_exception(StoreError(f"worker channel: {exc}"))
                else:
                    future.set_result(_decode_delivered(reply["delivered"]))
        except ConnectionError as exc:  # the main process ended (killed, or stopping)
            log.info("ipc.closed", extra={"error": str(exc)[:200]})
        except (ValueError, OSError, KeyError, TypeError) as exc:
            log.warning("ipc.bad_reply", extra={"error": str(exc)[:200]})
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(IpcClosed("the main process is gone"))
            self._pending.clear()

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Delivered]:
        """Commit ``deliveries`` in the main process. Raises what its store raised
        (NotFound, StoreError), or IpcClosed."""
        delivered: list[Delivered] = await self._request(
            {"op": "deliver", "deliveries": encode_deliveries(deliveries)}
        )
        return delivered

    async def call(self, method: str, *args: object, **kwargs: object) -> Any:
        """``await store.<method>(*args, **kwargs)`` in the main process (``method`` one
        of ``WORKER_STORE_CALLS``). Raises what its store raised (NotFound,
        AlreadyExists, OverQuota, other StoreError as StoreError), or IpcClosed."""
        return await self._request({"op": "call", "method": method, "args": dumps((args, kwargs))})

    async def _request(self, message: dict[str, Any]) -> Any:
        if self._writer is None or self.closed.is_set():
            raise IpcClosed("the main process is gone")
        self._next += 1
        ident = self._next
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        frame = _frame({"id": ident, **message})
        if len(frame) - _LENGTH.size > IPC_FRAME_MAX:
            self._pending.pop(ident, None)
            raise StoreError(
                f"{message['op']} request of {len(frame)} octets exceeds {IPC_FRAME_MAX}"
            )
        try:
            self._writer.write(frame)
            await self._writer.drain()
        except OSError as exc:
            self._pending.pop(ident, None)
            raise IpcClosed(f"the main process is gone: {exc}") from exc
        return await future

    def wake_queue(self) -> None:
        """Tell the main process's delivery worker that the queue has new mail."""
        self._notify("wake")

    def up(self) -> None:
        """Tell the main process that this worker accepts connections."""
        self._notify("up")

    def _notify(self, op: str) -> None:
        if self._writer is not None and not self.closed.is_set():
            with contextlib.suppress(OSError):
                self._writer.write(_frame({"id": 0, "op": op}))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._reader_task
