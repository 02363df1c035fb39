"""A meter's view of its bus that sees each of its requests, whatever the protocol: the
metrics time sessions and count requests (agent.metrics), `energy-agent test` records
each request and its answer (agent.commission).

A session's key (a Modbus unit, a DL/T 645 meter) and its read's arguments are the
protocol's; the wrapper forwards them untouched, so one wrapper serves every protocol.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, ParamSpec, Protocol, TypeVar

KeyT = TypeVar("KeyT")
KeyT_contra = TypeVar("KeyT_contra", contravariant=True)
ReadT_co = TypeVar("ReadT_co", covariant=True)
ArgsP = ParamSpec("ArgsP")
ValueT = TypeVar("ValueT")


class SessionBus(Protocol[KeyT_contra, ReadT_co]):
    """A meter's view of its bus (agent.poller.MeterBus, agent.dlt645.poller.Dlt645MeterBus)."""

    @property
    def name(self) -> str: ...

    def session(self, key: KeyT_contra, /) -> AbstractAsyncContextManager[ReadT_co]: ...


class WatchedBus(Generic[KeyT, ArgsP, ValueT]):
    """Forwards `name` and `session`; `_request` sees each request of a session, and
    `_watch` the session itself (entered once the bus is held)."""

    def __init__(self, bus: SessionBus[KeyT, Callable[ArgsP, Awaitable[ValueT]]]) -> None:
        self._bus = bus

    @property
    def name(self) -> str:
        return self._bus.name

    @contextlib.asynccontextmanager
    async def session(self, key: KeyT) -> AsyncIterator[Callable[ArgsP, Awaitable[ValueT]]]:
        async with self._bus.session(key) as read, self._watch():

            async def watched(*args: ArgsP.args, **kwargs: ArgsP.kwargs) -> ValueT:
                return await self._request(read, *args, **kwargs)

            yield watched

    def _watch(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def _request(
        self,
        read: Callable[ArgsP, Awaitable[ValueT]],
        *args: ArgsP.args,
        **kwargs: ArgsP.kwargs,
    ) -> ValueT:
        return await read(*args, **kwargs)
