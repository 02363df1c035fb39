"""Settles what a profile leaves to the device, by reading it once per connection.

Some register maps depend on the unit in front of us (firmware variants with other
addresses, SunSpec models found by walking the model chain). `resolve_profile` asks the
device and returns a profile with every address concrete; the poller plans its reads
from that. The I/O is injected as `read`, so this logic is tested without a server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent.profiles.model import Function, Profile

ReadRegisters = Callable[[Function, int, int], Awaitable[list[int]]]
"""read(function, address, count) -> registers; raises agent.modbus.errors.ReadError."""


async def resolve_profile(profile: Profile, read: ReadRegisters) -> Profile:
    """The profile with every address concrete for this device."""
    del read  # nothing to settle yet for the built-in profiles
    return profile
