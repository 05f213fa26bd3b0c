"""Fake Mindbody and Zenoti: HTTP servers on loopback with a seeded world that changes over time, which
serve their API's shapes and send their webhooks imperfectly (duplicated, reordered, dropped), for tests
and for `medspa dev fake-source`. Not used by the running system."""

from __future__ import annotations

from typing import Any

from medspa.integrations.fakes.mindbody import FakeMindbody
from medspa.integrations.fakes.source import FakeSource, Knobs, Sent
from medspa.integrations.fakes.world import World
from medspa.integrations.fakes.zenoti import FakeZenoti

__all__ = ["FakeMindbody", "FakeSource", "FakeZenoti", "Knobs", "Sent", "World", "make_fake"]


def make_fake(connector: str, world: World, **options: Any) -> FakeSource:
    """The fake of `connector` (`mindbody` or `zenoti`); ValueError for another."""
    if connector == "mindbody":
        return FakeMindbody(world, **options)
    if connector == "zenoti":
        return FakeZenoti(world, **options)
    raise ValueError(f"no fake of {connector!r} (mindbody or zenoti)")
