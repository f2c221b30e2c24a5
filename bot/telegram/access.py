"""Who may ask, and how often: allowlists, admins, a per-user rate limit.

Pure and clock-injectable, so the rules are tested without Telegram; ``bot.telegram.gate``
applies them to every update.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # say so (private chats)
    IGNORE = "ignore"  # stay silent (groups: a bot that answers strangers there is noise)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Allowlists: an empty list means everyone (users) or every group (chats).

    A user in ``allowed_user_ids`` may ask anywhere the bot serves; any member of a group in
    ``allowed_chat_ids`` may ask in that group. Admins may always ask and run admin commands.
    """

    admin_ids: frozenset[int] = frozenset()
    allowed_user_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids

    def _user_allowed(self, user_id: int | None) -> bool:
        if self.is_admin(user_id):
            return True
        if not self.allowed_user_ids:
            return True
        return user_id is not None and user_id in self.allowed_user_ids

    def decide(self, user_id: int | None, chat_id: int, private: bool) -> Verdict:
        if private:
            return Verdict.ALLOW if self._user_allowed(user_id) else Verdict.REFUSE
        if self.is_admin(user_id):
            return Verdict.ALLOW
        if self.allowed_chat_ids:
            if chat_id in self.allowed_chat_ids:
                return Verdict.ALLOW
            # An allowlisted user is served in any group; other groups are not served.
            if self.allowed_user_ids and user_id in self.allowed_user_ids:
                return Verdict.ALLOW
            return Verdict.IGNORE
        return Verdict.ALLOW if self._user_allowed(user_id) else Verdict.IGNORE


@dataclass(slots=True)
class SlidingWindowLimiter:
    """At most ``limit`` events per key in any ``window_s`` seconds.

    Keys whose events have all expired are dropped, so memory is bounded by the number of
    users active in the last window.
    """

    limit: int
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _events: dict[int, deque[float]] = field(default_factory=dict)

    def hit(self, key: int) -> float | None:
        """Record one event for ``key``; None if allowed, else seconds until one would be."""
        if self.limit <= 0:
            return None  # 0 disables the limit
        now = self.clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window_s:
            events.popleft()
        if len(events) >= self.limit:
            return max(0.0, self.window_s - (now - events[0]))
        events.append(now)
        self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        if len(self._events) < 1024:
            return
        stale = [k for k, ev in self._events.items() if not ev or now - ev[-1] >= self.window_s]
        for key in stale:
            del self._events[key]
