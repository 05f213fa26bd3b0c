"""Receipts gathered into shared transactions: deliveries that reach one server process at the same time
are verified and stored together (`service.receive_many`), one transaction and a few statements for
them all, where each alone would cost a transaction of its own (BEGIN, the row-security scope, the
connection's row, the insert, COMMIT and its flush to disk). A sender is answered only once the
transaction holding its delivery committed, so what is acknowledged is stored.

One thread per engine and process takes what is waiting, up to `MOST` at a time, and stores it; under
light load a batch is one delivery, so nothing waits for others to arrive. If a shared transaction
fails (the database is unreachable, say), each of its deliveries is tried again alone, so no delivery
fails for another's sake.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine

from medspa.integrations.receiving import DeliveryRefusedError
from medspa.integrations.service import Incoming, Receipt, receive_many

logger = logging.getLogger(__name__)

MOST: Final = 64  # deliveries stored in one transaction at most


@dataclass
class _Waiting:
    delivery: Incoming
    answer: Future[Receipt] = field(default_factory=Future)


class Intake:
    """The receipts of one engine in this process (`intake_for`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiting: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="medspa-intake", daemon=True)
        self._thread.start()

    def submit(self, delivery: Incoming) -> Future[Receipt]:
        """The delivery's receipt, once its transaction committed; DeliveryRefusedError (logged, nothing
        stored) for one refused."""
        waiting = _Waiting(delivery)
        self._waiting.put(waiting)
        return waiting.answer

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < MOST:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._store(batch)
            except Exception as error:  # never leave the thread: the next deliveries need it
                logger.exception("storing %d webhook deliveries failed", len(batch))
                for waiting in batch:
                    _settle(waiting, error)

    def _store(self, batch: list[_Waiting]) -> None:
        try:
            outcomes: list[Receipt | DeliveryRefusedError] = receive_many(
                self._engine, [waiting.delivery for waiting in batch]
            )
        except Exception as error:
            if len(batch) > 1:  # each alone: one delivery's trouble is not the others'
                for waiting in batch:
                    self._store([waiting])
                return
            _settle(batch[0], error)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            _settle(waiting, outcome)


def _settle(waiting: _Waiting, outcome: Receipt | BaseException) -> None:
    """Answer the waiting sender, unless the answer was given up (the request was cancelled) or given
    already: what was stored stays stored, and the source's retry is answered as a duplicate."""
    try:
        if isinstance(outcome, BaseException):
            waiting.answer.set_exception(outcome)
        else:
            waiting.answer.set_result(outcome)
    except InvalidStateError:
        pass


_INTAKES: weakref.WeakKeyDictionary[Engine, Intake] = weakref.WeakKeyDictionary()
_INTAKES_LOCK: Final = threading.Lock()


def intake_for(engine: Engine) -> Intake:
    """The engine's intake in this process, started on first use."""
    with _INTAKES_LOCK:
        intake = _INTAKES.get(engine)
        if intake is None:
            intake = _INTAKES[engine] = Intake(engine)
        return intake
