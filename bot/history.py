"""Per-conversation question history: bounded and expiring, safe to share between threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class History:
    """Remembers the last ``turns`` standalone questions of each conversation for ``ttl_s``.

    At most ``max_conversations`` are kept (least recently used dropped first), so a busy
    group bot cannot grow without bound.
    """

    def __init__(
        self,
        turns: int = 4,
        ttl_s: float = 1800.0,
        max_conversations: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.turns = turns
        self.ttl_s = ttl_s
        self.max_conversations = max_conversations
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[float, deque[str]]] = OrderedDict()

    def get(self, conversation: str | None) -> list[str]:
        if conversation is None:
            return []
        with self._lock:
            entry = self._data.get(conversation)
            if entry is None:
                return []
            stamp, questions = entry
            if self._clock() - stamp > self.ttl_s:
                del self._data[conversation]
                return []
            return list(questions)

    def add(self, conversation: str | None, question: str) -> None:
        if conversation is None or self.turns <= 0:
            return
        with self._lock:
            entry = self._data.pop(conversation, None)
            questions = entry[1] if entry and self._clock() - entry[0] <= self.ttl_s else deque()
            questions.append(question)
            while len(questions) > self.turns:
                questions.popleft()
            self._data[conversation] = (self._clock(), questions)
            while len(self._data) > self.max_conversations:
                self._data.popitem(last=False)

    def forget(self, conversation: str) -> None:
        with self._lock:
            self._data.pop(conversation, None)
