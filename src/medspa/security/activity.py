"""When sessions and tokens were last used, without a write on every request.

Each server process notes the last use of every session and token it authenticates (in memory, under a
lock) and writes what it noted to the database every `FLUSH_SECONDS` in one short unit of work (and once
more when it stops). A reading request therefore never writes, which matters on SQLite, whose single
writer would otherwise serialize every page view. A session's idle time is counted from the later of the
database's `last_seen_at` and this process's own note, so it is exact for the process that served the
session and at most `FLUSH_SECONDS` behind for the others.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, update

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.security.models import ApiToken, WebSession

logger = logging.getLogger(__name__)
FLUSH_SECONDS = 30.0
# A browser session ends after this long without a request (and `service.SESSION_HOURS` after sign-in).
SESSION_IDLE = timedelta(minutes=30)


class Activity:
    """The last uses one process has seen and not yet written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[uuid.UUID, datetime] = {}
        self._tokens: dict[uuid.UUID, datetime] = {}
        self._session_seen: dict[uuid.UUID, datetime] = {}

    def saw_session(self, session_id: uuid.UUID, at: datetime) -> None:
        with self._lock:
            self._sessions[session_id] = max(at, self._sessions.get(session_id, at))
            self._session_seen[session_id] = max(at, self._session_seen.get(session_id, at))

    def saw_token(self, token_id: uuid.UUID, at: datetime) -> None:
        with self._lock:
            self._tokens[token_id] = max(at, self._tokens.get(token_id, at))

    def session_last_seen(self, session_id: uuid.UUID) -> datetime | None:
        """When this process last saw the session (written or not)."""
        with self._lock:
            return self._session_seen.get(session_id)

    def take(self) -> tuple[dict[uuid.UUID, datetime], dict[uuid.UUID, datetime]]:
        """The uses not yet written, forgotten here (put them back with `put_back` if writing fails)."""
        with self._lock:
            sessions, tokens = self._sessions, self._tokens
            self._sessions, self._tokens = {}, {}
            return sessions, tokens

    def put_back(self, sessions: dict[uuid.UUID, datetime], tokens: dict[uuid.UUID, datetime]) -> None:
        with self._lock:
            for target, seen in ((self._sessions, sessions), (self._tokens, tokens)):
                for key, at in seen.items():
                    target[key] = max(at, target.get(key, at))

    def forget_older_than(self, cutoff: datetime) -> None:
        """Drop this process's notes of sessions not seen since `cutoff` (they have ended by now)."""
        with self._lock:
            self._session_seen = {key: at for key, at in self._session_seen.items() if at >= cutoff}


_SESSIONS = (
    update(WebSession)
    .where(
        WebSession.id == bindparam("row_id"),
        (WebSession.last_seen_at.is_(None)) | (WebSession.last_seen_at < bindparam("at")),
    )
    .values(last_seen_at=bindparam("at"))
)
_TOKENS = (
    update(ApiToken)
    .where(
        ApiToken.id == bindparam("row_id"),
        (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < bindparam("at")),
    )
    .values(last_used_at=bindparam("at"))
)


def flush(engine: Engine, activity: Activity) -> int:
    """Write the noted uses (never moving a time backwards); how many were written. On failure the
    uses are kept for the next flush and the error is raised."""
    sessions, tokens = activity.take()
    if not sessions and not tokens:
        return 0
    try:
        with unit_of_work(engine) as session:
            connection = session.connection()
            for statement, seen in ((_SESSIONS, sessions), (_TOKENS, tokens)):
                for row_id, at in sorted(seen.items()):  # one order for every process: no deadlock
                    connection.execute(statement, {"row_id": row_id, "at": at})
    except BaseException:
        activity.put_back(sessions, tokens)
        raise
    return len(sessions) + len(tokens)


class Flusher:
    """A daemon thread of the server process that calls `flush` every `FLUSH_SECONDS`, and once more
    when stopped."""

    def __init__(
        self, engine: Engine, activity: Activity, told: clock.Clock, seconds: float = FLUSH_SECONDS
    ) -> None:
        self.engine, self.activity, self.told, self.seconds = engine, activity, told, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medspa-activity", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._flush_once()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self._flush_once()

    def _flush_once(self) -> None:
        with clock.using(self.told):
            self.activity.forget_older_than(clock.now() - SESSION_IDLE)
        try:
            flush(self.engine, self.activity)
        except Exception:  # the database may be away for a moment: the uses wait for the next flush
            logger.exception("could not write the last use of sessions and tokens")
