"""Invalidation that reaches every replica: an invalidation is published on a Redis channel and
every replica drops the matching L1 entries when the message arrives. A replica that missed
messages (Redis was down, its subscription dropped) finds out from the epoch: a token kept in
Redis, replaced by every invalidation and carried in its message. Each replica reads it when
it (re)subscribes and every ``check_s``; a token it has not seen means "clear all of L1".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from copygen.cache.keys import KEY_PREFIX
from copygen.errors import CacheUnavailable

log = logging.getLogger("copygen.cache")

CHANNEL = f"{KEY_PREFIX}:invalidate"
STOP_TIMEOUT_S = 2.0
EPOCH_KEY = f"{KEY_PREFIX}:epoch"


class Invalidation:
    """Publishes invalidations and applies everyone's (``on_pattern(glob)``; ``on_missed()``
    when messages may have been lost)."""

    def __init__(
        self,
        url: str,
        *,
        on_pattern: Callable[[str], None],
        on_missed: Callable[[], None],
        timeout_s: float = 0.25,
        check_s: float = 2.0,
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._on_pattern = on_pattern
        self._on_missed = on_missed
        self.timeout_s = timeout_s
        self.check_s = check_s
        self.epoch: str | None = None
        self.connected = False
        self.received_total = 0
        self.missed_total = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="copygen-invalidation")

    async def stop(self) -> None:
        """Stop listening, within a bound: a read cancelled deep in the client must not hold
        up shutdown."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._redis.aclose()

    async def publish(self, pattern: str) -> None:
        """Tell every replica (this one included) to drop keys matching ``pattern``; raises
        CacheUnavailable when Redis cannot take it."""
        token = secrets.token_hex(8)
        message = json.dumps({"pattern": pattern, "epoch": token})
        try:
            async with asyncio.timeout(self.timeout_s * 4):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(EPOCH_KEY, token)
                    pipe.publish(CHANNEL, message)
                    await pipe.execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any Redis trouble: nobody else was told
            raise CacheUnavailable(
                "Redis is unreachable: other replicas could not be told to drop their copy"
            ) from exc
        self.epoch = token

    async def _listen(self) -> None:
        """Subscribe, apply messages, check the epoch; reconnect after any failure."""
        while not self._closing:
            try:
                await self._subscribed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis went away: try again shortly
                if self.connected:
                    log.warning("invalidation channel lost: %s", type(exc).__name__)
                self.connected = False
                await asyncio.sleep(self.check_s / 2)

    async def _subscribed(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self.connected = True
            await self._check_epoch()
            loop = asyncio.get_running_loop()
            next_check = loop.time() + self.check_s
            while not self._closing:
                message = await pubsub.get_message(timeout=min(self.check_s, 1.0))
                if message is not None:
                    self._apply(message)
                if loop.time() >= next_check:
                    await self._check_epoch()
                    next_check = loop.time() + self.check_s
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _apply(self, message: dict[str, Any]) -> None:
        try:
            body = json.loads(message["data"])
            pattern, epoch = str(body["pattern"]), str(body["epoch"])
        except (ValueError, KeyError, TypeError):
            return
        self.received_total += 1
        self._on_pattern(pattern)
        self.epoch = epoch

    async def _check_epoch(self) -> None:
        raw = await self._redis.get(EPOCH_KEY)
        epoch = raw.decode() if isinstance(raw, bytes) else None
        if epoch != self.epoch:
            if epoch is not None or self.epoch is not None:
                self.missed_total += 1
                log.info("invalidation epoch changed unseen: clearing L1")
                self._on_missed()
            self.epoch = epoch
