"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI API for the openai SDK.

Usable from sync and async tests alike: the server runs its own event loop in a thread.

    with FakeOpenAIServer() as server:
        server.reply = "Trade totaled 341.81 billion yuan [1]."
        client = ChatOpenAI(base_url=server.base_url, ...)
        ...
        server.requests[-1]["messages"]  # the request bodies, as sent

Scriptable per test: ``reply`` (text, or a function of the request body), ``replies`` (a queue
used before ``reply``), ``delay_s``, ``status`` (e.g. 500), ``malformed`` (a 200 whose body is
not a chat completion), ``echo_key`` (error bodies repeat the API key) and ``faults`` (one
per request, before the rest: "hang", "500", "401-echo", "garbage"). ``/v1/embeddings``
returns deterministic hash vectors (float or base64, as asked) and ``/v1/models`` lists
``model``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

Body = dict[str, Any]
Reply = str | Callable[[Body], str]


def _embedding(item: object, dim: int) -> list[float]:
    digest = hashlib.sha256(repr(item).encode()).digest()
    while len(digest) < dim:
        digest += hashlib.sha256(digest).digest()
    values = [(b - 127.5) / 127.5 for b in digest[:dim]]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


class FakeOpenAIServer:
    def __init__(self, *, model: str = "fake-model", embedding_dim: int = 16) -> None:
        self.model = model
        self.embedding_dim = embedding_dim
        self.reply: Reply = "OK"
        self.replies: deque[Reply] = deque()
        self.delay_s = 0.0
        self.status = 200
        self.malformed = False
        self.echo_key = False  # error bodies repeat the caller's API key
        # Per-request faults, used first: "hang" (delay_s=60), "500", "401-echo", "garbage".
        self.faults: deque[str] = deque()
        self.requests: list[Body] = []  # chat completion request bodies, in order
        self.headers: list[dict[str, str]] = []
        self.embedding_requests: list[Body] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def last_request(self) -> Body:
        return self.requests[-1]

    # -- handlers ---------------------------------------------------------------------------

    async def _wait(self) -> None:
        if self.delay_s > 0 and self._stopping is not None:
            # Wakes early when the server stops, so shutdown never waits out a long delay.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay_s)

    def _error(self) -> web.Response:
        message = "scripted failure"
        if self.echo_key and self.headers:
            # As some endpoints do: the rejected key repeated in the error body.
            key = self.headers[-1].get("Authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key}"
        return web.json_response(
            {"error": {"message": message, "type": "server_error", "code": None}},
            status=self.status,
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body: Body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        fault = self.faults.popleft() if self.faults else ""
        if fault == "hang" and self._stopping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 60)
        await self._wait()
        if fault in ("500", "401-echo"):
            saved = self.status, self.echo_key
            self.status, self.echo_key = int(fault[:3]), fault == "401-echo"
            try:
                return self._error()
            finally:
                self.status, self.echo_key = saved
        if self.status != 200:
            return self._error()
        if self.malformed or fault == "garbage":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        reply = self.replies.popleft() if self.replies else self.reply
        text = reply(body) if callable(reply) else reply
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": sum(
                        len(str(m.get("content", "")).split()) for m in body.get("messages", [])
                    ),
                    "completion_tokens": len(text.split()),
                    "total_tokens": 0,
                },
            }
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body: Body = await request.json()
        self.embedding_requests.append(body)
        await self._wait()
        if self.status != 200:
            return self._error()
        inputs = body["input"]
        # A string, a list of strings, a token list, or a list of token lists.
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        data = []
        for i, item in enumerate(inputs):
            vector = _embedding(item, self.embedding_dim)
            encoded: object = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", self.model),
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )

    async def _models(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "test"}],
            }
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as err:  # reported to the starting thread
                failure.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError("fake OpenAI server failed to start") from failure[0]
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return

        async def shutdown() -> None:
            if self._stopping is not None:
                self._stopping.set()
            await runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._runner = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
