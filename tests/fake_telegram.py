"""A strict fake of the Telegram Bot API on 127.0.0.1, for tests and the bench.

It fails the way Telegram fails: invalid HTML, overlong or empty text, unknown chats,
replies to missing messages, stale callback queries, unknown methods, wrong tokens, and
scripted 429 flood control (``parameters.retry_after``) or 5xx errors.

Test side: ``send_private``/``send_group`` inject user messages (entities for commands and
@mentions computed as Telegram does), ``click`` injects a callback query for a button the
bot actually sent, ``sent(chat_id)`` lists what the bot sent, ``wait_for_replies`` waits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_telegram_html import MAX_MESSAGE_LENGTH, EntityParseError, parse_html, utf16_len

JSON = dict[str, Any]
_OBJECT_PARAMS = {"reply_parameters", "reply_markup", "commands", "scope", "link_preview_options",
                  "allowed_updates", "entities"}  # fmt: skip
_CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice",
                 "upload_voice", "upload_document", "choose_sticker", "find_location"}  # fmt: skip


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class ScriptedFailure:
    remaining: int
    method: str | None
    code: int
    description: str
    retry_after: int | None


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
    bot_id: int = 123456
    bot_username: str = "briefing_test_bot"
    url: str = ""
    calls: list[tuple[float, str, JSON]] = field(default_factory=list)
    chat_actions: list[tuple[int, str]] = field(default_factory=list)
    callback_answers: dict[str, JSON] = field(default_factory=dict)
    commands: dict[str, list[JSON]] = field(default_factory=dict)
    webhook: JSON | None = None
    pushed: list[JSON] = field(default_factory=list)  # every update made, for webhook tests
    _chats: dict[int, JSON] = field(default_factory=dict)
    _users: dict[int, JSON] = field(default_factory=dict)
    _messages: dict[tuple[int, int], JSON] = field(default_factory=dict)
    _bot_messages: dict[int, list[JSON]] = field(default_factory=lambda: defaultdict(list))
    _next_message_id: dict[int, itertools.count[int]] = field(default_factory=dict)
    _updates: list[JSON] = field(default_factory=list)
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _query_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _open_queries: dict[str, JSON] = field(default_factory=dict)
    _failures: list[ScriptedFailure] = field(default_factory=list)
    _changed: asyncio.Condition | None = None
    _poller: asyncio.Future[bool] | None = None
    _runner: web.AppRunner | None = None

    # -------------------------------------------------------------------- lifecycle

    async def start(self) -> FakeTelegram:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"{self.url}/bot"

    # -------------------------------------------------------------------- test API

    def _user(self, user_id: int, name: str | None = None) -> JSON:
        user = {"id": user_id, "is_bot": False, "first_name": name or f"User{user_id}",
                "username": f"user{user_id}"}  # fmt: skip
        return self._users.setdefault(user_id, user)

    def _chat(self, chat_id: int, kind: str, title: str | None = None) -> JSON:
        if kind == "private":
            chat = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        else:
            chat = {"id": chat_id, "type": kind, "title": title or f"Group {chat_id}"}
        return self._chats.setdefault(chat_id, chat)

    def _new_message_id(self, chat_id: int) -> int:
        return next(self._next_message_id.setdefault(chat_id, itertools.count(1)))

    def _entities(self, text: str) -> list[JSON]:
        entities = []
        for match in re.finditer(r"(?:(?<=\s)|^)(/[A-Za-z0-9_]{1,32}(?:@\w+)?)|@\w{5,32}", text):
            offset = utf16_len(text[: match.start()])
            length = utf16_len(match.group(0))
            kind = "bot_command" if match.group(0).startswith("/") else "mention"
            entities.append({"type": kind, "offset": offset, "length": length})
        return entities

    def _push_update(self, update: JSON) -> None:
        update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        self.pushed.append(update)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _user_message(self, chat: JSON, user_id: int, text: str, reply_to: int | None) -> JSON:
        message: JSON = {
            "message_id": self._new_message_id(chat["id"]),
            "from": self._user(user_id),
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if entities := self._entities(text):
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = self._messages[(chat["id"], reply_to)]
        self._messages[(chat["id"], message["message_id"])] = message
        self._push_update({"message": message})
        return message

    def send_private(self, user_id: int, text: str, *, reply_to: int | None = None) -> JSON:
        """A user writes to the bot in a private chat (chat id == user id, as in Telegram)."""
        return self._user_message(self._chat(user_id, "private"), user_id, text, reply_to)

    def send_group(
        self, chat_id: int, user_id: int, text: str, *, reply_to: int | None = None
    ) -> JSON:
        """A user writes in a group (use negative chat ids, as Telegram does)."""
        return self._user_message(self._chat(chat_id, "group"), user_id, text, reply_to)

    def click(self, chat_id: int, user_id: int, message_id: int, *, data: str | None = None) -> str:
        """The user presses an inline button of a bot message; returns the callback query id."""
        message = self._messages[(chat_id, message_id)]
        buttons = [b for row in message.get("reply_markup", {}).get("inline_keyboard", [])
                   for b in row if "callback_data" in b]  # fmt: skip
        if data is None:
            data = buttons[0]["callback_data"]
        assert any(b["callback_data"] == data for b in buttons), "no such button"
        query_id = str(next(self._query_ids))
        query = {"id": query_id, "from": self._user(user_id), "message": message,
                 "chat_instance": f"ci{chat_id}", "data": data}  # fmt: skip
        self._open_queries[query_id] = query
        self._push_update({"callback_query": query})
        return query_id

    def fail_next(
        self, count: int, *, method: str | None = None, retry_after: int | None = 1,
        code: int = 429, description: str | None = None,
    ) -> None:  # fmt: skip
        """The next ``count`` calls (of ``method``) fail: 429 flood control by default."""
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}" if code == 429 else "Bad Gateway"
            )
        self._failures.append(ScriptedFailure(count, method, code, description, retry_after))

    def sent(self, chat_id: int) -> list[JSON]:
        """Messages the bot sent to ``chat_id``, oldest first.

        Beyond the Bot API fields: ``html`` is the text as sent, ``at`` the monotonic time.
        """
        return list(self._bot_messages.get(chat_id, []))

    def calls_of(self, method: str) -> list[tuple[float, JSON]]:
        return [(t, params) for t, m, params in self.calls if m == method]

    async def wait_until(self, predicate: Callable[[], bool], wait_s: float = 20.0) -> None:
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), wait_s)

    async def wait_for_replies(
        self, chat_id: int, count: int = 1, wait_s: float = 20.0
    ) -> list[JSON]:
        await self.wait_until(lambda: len(self._bot_messages.get(chat_id, [])) >= count, wait_s)
        return self.sent(chat_id)

    # -------------------------------------------------------------------- HTTP

    async def _params(self, request: web.Request) -> JSON:
        params: JSON = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
            # Uploaded files (sendPhoto's photo) as their bytes.
            files = {k: v for k, v in form.items() if isinstance(v, web.FileField)}
            params.update({k: v.file.read() for k, v in files.items()})
        for key in _OBJECT_PARAMS & params.keys():
            if isinstance(params[key], str):
                params[key] = json.loads(params[key])
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await self._params(request)
            self.calls.append((time.monotonic(), method, params))
            self._scripted_failure(method)
            handler = getattr(self, f"_api_{method.lower()}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params)
            await self._notify()
            return web.json_response({"ok": True, "result": result})
        except ApiError as err:
            body: JSON = {"ok": False, "error_code": err.code, "description": err.description}
            if err.parameters:
                body["parameters"] = err.parameters
            return web.json_response(body, status=err.code)

    def _scripted_failure(self, method: str) -> None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.method in (None, method):
                failure.remaining -= 1
                params = {"retry_after": failure.retry_after} if failure.code == 429 else None
                raise ApiError(failure.code, failure.description, params)

    def _known_chat(self, params: JSON) -> JSON:
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, ValueError):
            raise bad_request("chat not found") from None
        if chat_id not in self._chats:
            raise bad_request("chat not found")
        return self._chats[chat_id]

    def _visible_text(self, params: JSON) -> str:
        text = str(params.get("text", ""))
        if str(params.get("parse_mode", "")).upper() == "HTML":
            try:
                text = parse_html(text)
            except EntityParseError as err:
                raise bad_request(f"can't parse entities: {err}") from None
        elif params.get("parse_mode"):
            raise bad_request("unsupported parse_mode in this fake")
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_len(text.strip()) > MAX_MESSAGE_LENGTH:
            raise bad_request("message is too long")
        return text.strip()

    def _check_markup(self, markup: JSON | None) -> None:
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if not button.get("text"):
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")

    # -------------------------------------------------------------------- methods

    async def _api_getme(self, params: JSON) -> JSON:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Briefing Bot",
                "username": self.bot_username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}  # fmt: skip

    async def _api_deletewebhook(self, params: JSON) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self._updates.clear()
        return True

    async def _api_setwebhook(self, params: JSON) -> bool:
        if not str(params.get("url", "")).startswith(("https://", "http://127.0.0.1")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        return True

    async def _api_getupdates(self, params: JSON) -> list[JSON]:
        if self.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")  # fmt: skip
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        allowed = params.get("allowed_updates") or []
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if self._poller is not None and not self._poller.done():
            self._poller.set_result(True)  # Telegram ends the older long poll: 409 there
        if not self._updates and timeout > 0:
            poller = self._poller = asyncio.get_running_loop().create_future()
            waiter = asyncio.ensure_future(self._wait_updates())
            try:
                await asyncio.wait(
                    {waiter, poller}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
            if poller.done():
                raise ApiError(409, "Conflict: terminated by other getUpdates request")
            poller.cancel()
        updates = [u for u in self._updates if not allowed or any(k in u for k in allowed)]
        return updates[:limit]

    async def _wait_updates(self) -> None:
        assert self._changed is not None
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._updates))

    async def _api_setmycommands(self, params: JSON) -> bool:
        for command in params.get("commands", []):
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        scope = params.get("scope") or {"type": "default"}
        if scope.get("type") == "chat":
            self._known_chat(scope)
        self.commands[json.dumps(scope, sort_keys=True)] = list(params.get("commands", []))
        return True

    async def _api_getmycommands(self, params: JSON) -> list[JSON]:
        scope = params.get("scope") or {"type": "default"}
        return self.commands.get(json.dumps(scope, sort_keys=True), [])

    async def _api_sendchataction(self, params: JSON) -> bool:
        chat = self._known_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append((chat["id"], str(params["action"])))
        return True

    async def _api_sendmessage(self, params: JSON) -> JSON:
        chat = self._known_chat(params)
        text = self._visible_text(params)
        reply = params.get("reply_parameters") or {}
        if "reply_to_message_id" in params:
            reply = {"message_id": int(params["reply_to_message_id"])}
        replied = self._messages.get((chat["id"], int(reply.get("message_id", 0))))
        if reply and replied is None and not reply.get("allow_sending_without_reply"):
            raise bad_request("message to be replied not found")
        self._check_markup(params.get("reply_markup"))
        bot = await self._api_getme({})
        message: JSON = {"message_id": self._new_message_id(chat["id"]), "from": bot,
                         "chat": chat, "date": int(time.time()), "text": text}  # fmt: skip
        if replied is not None:
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self._messages[(chat["id"], message["message_id"])] = message
        record = {**message, "html": params.get("text"), "at": time.monotonic()}
        self._bot_messages[chat["id"]].append(record)
        return message

    async def _api_sendphoto(self, params: JSON) -> JSON:
        """An uploaded PNG or JPEG with an optional caption (at most 1024 characters)."""
        chat = self._known_chat(params)
        photo = params.get("photo")
        if not isinstance(photo, bytes):
            raise bad_request("wrong file identifier/HTTP URL specified")
        if photo[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = int.from_bytes(photo[16:20], "big"), int.from_bytes(photo[20:24], "big")
        elif photo[:2] == b"\xff\xd8":
            width = height = 0  # JPEG: size not read by this fake
        else:
            raise bad_request("IMAGE_PROCESS_FAILED")
        caption = ""
        if params.get("caption"):
            caption = self._visible_text({"text": params["caption"], "parse_mode": params.get(
                "parse_mode")})  # fmt: skip
            if utf16_len(caption) > 1024:
                raise bad_request("message caption is too long")
        reply = params.get("reply_parameters") or {}
        replied = self._messages.get((chat["id"], int(reply.get("message_id", 0))))
        if reply and replied is None and not reply.get("allow_sending_without_reply"):
            raise bad_request("message to be replied not found")
        bot = await self._api_getme({})
        message_id = self._new_message_id(chat["id"])
        size = {"file_id": f"photo-{chat['id']}-{message_id}", "file_unique_id": f"u{message_id}",
                "width": width, "height": height, "file_size": len(photo)}  # fmt: skip
        message: JSON = {"message_id": message_id, "from": bot, "chat": chat,
                         "date": int(time.time()), "photo": [size]}  # fmt: skip
        if caption:
            message["caption"] = caption
        if replied is not None:
            message["reply_to_message"] = {
                k: v for k, v in replied.items() if k != "reply_to_message"
            }
        self._messages[(chat["id"], message_id)] = message
        record = {**message, "caption_html": params.get("caption"), "photo_bytes": photo,
                  "at": time.monotonic()}  # fmt: skip
        self._bot_messages[chat["id"]].append(record)
        return message

    async def _api_editmessagetext(self, params: JSON) -> JSON:
        chat = self._known_chat(params)
        message = self._messages.get((chat["id"], int(params.get("message_id", 0))))
        if message is None:
            raise bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise bad_request("message can't be edited")
        text = self._visible_text(params)
        if text == message["text"] and params.get("reply_markup") == message.get("reply_markup"):
            raise bad_request("message is not modified: specified new message content and reply "
                              "markup are exactly the same as a current content and reply markup "
                              "of the message")  # fmt: skip
        self._check_markup(params.get("reply_markup"))
        message["text"] = text
        message["reply_markup"] = params.get("reply_markup")
        return message

    async def _api_answercallbackquery(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if self._open_queries.pop(query_id, None) is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text", ""))) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = params
        return True
