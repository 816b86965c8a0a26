"""The public :class:`Bridge`: a modem, online, speaking MQTT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from atbridge.config import BridgeConfig
from atbridge.credentials import MqttCredentials
from atbridge.errors import ConfigurationError, Failed
from atbridge.fsm import Lifecycle, Message, Transition

# ------------------------------------------------------------------------


class Bridge:
    """A modem, online, speaking MQTT: the API most users want.

    ::

        async with Bridge(port="/dev/ttyACM0", credentials=creds, apn="iot.example") as bridge:
            await bridge.subscribe("/pk/dn/user/get", qos=1)
            await bridge.publish("/pk/dn/user/update", b"21.5", qos=1)
            async for message in bridge.messages():
                ...

    Entering the block starts the lifecycle and waits until it is online (or has
    failed, which raises). Leaving it disconnects cleanly.
    """

    def __init__(
        self,
        port: str | None = None,
        *,
        credentials: MqttCredentials | None = None,
        dialect: str = "auto",
        apn: str | None = None,
        config: BridgeConfig | None = None,
        online_timeout: float | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            if credentials is None or port is None:
                raise ConfigurationError(
                    "a Bridge needs a port and credentials (or a BridgeConfig)",
                    hint="Bridge(port='/dev/ttyACM0', credentials=MqttCredentials.plain(...))",
                )
            config = BridgeConfig(
                port=port, credentials=credentials, dialect=dialect, apn=apn, **options
            )
        elif options or credentials is not None or port is not None:
            config = replace(
                config,
                **{
                    k: v
                    for k, v in {"port": port, "credentials": credentials, **options}.items()
                    if v is not None
                },
            )
        self.config = config
        self.online_timeout = online_timeout
        self.lifecycle = Lifecycle(config)

    @property
    def state(self) -> str:
        """The lifecycle state (``online``, ``backing_off``, ...)."""
        return self.lifecycle.state

    @property
    def history(self) -> list[Transition]:
        """Every transition so far."""
        return self.lifecycle.history

    def transitions(self) -> AsyncIterator[Transition]:
        """The transitions from now on, as they happen."""
        queue = self.lifecycle.listen()

        async def stream() -> AsyncIterator[Transition]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self.lifecycle._listeners.remove(queue)

        return stream()

    async def start(self) -> None:
        """Start the lifecycle without waiting for it."""
        self.lifecycle.start()

    async def wait_online(self, timeout: float | None = None) -> None:
        """Wait until online; raise :class:`Failed` if the lifecycle gives up first."""
        state = await self.lifecycle.wait_for_state("online", "failed", timeout=timeout)
        if state == "failed":
            assert self.lifecycle.failure is not None
            raise Failed(self.lifecycle.failure)

    async def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish; QoS 1 returns on PUBACK, QoS 0 when the modem accepted the bytes."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        await self.lifecycle.publish(topic, data, qos, retain)

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> int:
        """Subscribe (restored after every reconnect); returns the granted QoS."""
        return await self.lifecycle.subscribe(topic_filter, qos)

    async def messages(self) -> AsyncIterator[Message]:
        """Messages on the subscriptions, as they arrive."""
        while True:
            yield await self.lifecycle.messages.get()

    async def close(self) -> None:
        """Disconnect cleanly and close the port."""
        await self.lifecycle.close()

    async def __aenter__(self) -> Bridge:
        await self.start()
        try:
            await self.wait_online(self.online_timeout)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = ["Bridge"]
