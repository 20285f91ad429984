"""Reading a bulk result ahead of its consumer, in a thread.

A whole-ledger read on PostgreSQL spends much of its time waiting for the server to
send rows (the scan of 410,000 chain summaries at 100,000 learners: about 1.7 s of
its ~8 s), and the driver releases the GIL while it waits. Read in a thread, those
waits overlap with the caller's work on the batches already read. At most `depth`
batches wait in between, so memory stays bounded by the batch size.

The source iterator is created, advanced and closed in the reading thread only (its
connection never crosses threads). An error there is raised in the consumer at the
point it would have been met. A consumer that stops early (an exception, a `break`)
stops the reader: it finishes the batch in hand, closes the source (so its
transaction ends and its connection goes back to the pool) and exits, and the
consumer waits for that before going on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Final, TypeVar, cast

T = TypeVar("T")

_END: Final = object()
_POLL_S = 0.05


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(open_source: Callable[[], Iterable[T]], depth: int = 2) -> Generator[T, None, None]:
    """The items of `open_source()`, read by a thread up to `depth` items ahead. The
    thread starts when the first item is asked for."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    return _read_ahead(open_source, depth)


def _read_ahead(open_source: Callable[[], Iterable[T]], depth: int) -> Generator[T, None, None]:
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        """Hand one item over; False when the consumer has gone."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            source = iter(open_source())
            try:
                for item in source:
                    if not put(item):
                        return
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer to raise
            put(_Failed(error))
            return
        put(_END)

    reader = threading.Thread(target=read, name="storage-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        reader.join()
