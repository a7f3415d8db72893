"""Which generator writes which channel: the default one (the in-process engine, or a remote
backend when COPYGEN_BACKEND_URL is set) and, with COPYGEN_BACKEND_ROUTES, the backend for
the channels routed to it."""

from __future__ import annotations

from collections.abc import Mapping

from copygen.backends.remote import RemoteBackend
from copygen.budget import MeteredGenerator
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.generation import Generator


class Generators:
    """The service's generators, the default one first, each charging the token budget of
    whoever calls it (copygen/budget.py), so no way to generate can skip the budget."""

    def __init__(self, default: Generator, routes: Mapping[str, Generator] | None = None) -> None:
        metered: dict[int, Generator] = {}  # one wrapper per generator, however many routes

        def meter(generator: Generator) -> Generator:
            if isinstance(generator, MeteredGenerator):
                return generator
            return metered.setdefault(id(generator), MeteredGenerator(generator))

        self.default = meter(default)
        #: Channels another generator writes; the rest: ``default``.
        self.routes = {channel: meter(generator) for channel, generator in (routes or {}).items()}

    @classmethod
    def from_settings(cls, settings: Settings, engine: Generator | None = None) -> Generators:
        """The given generator, else a remote backend when COPYGEN_BACKEND_URL is set, else
        the in-process engine; with COPYGEN_BACKEND_ROUTES, the in-process engine and the
        backend for those channels."""
        if engine is not None:
            return cls(engine)
        if not settings.backend_url:
            return cls(Engine.from_settings(settings))
        backend = RemoteBackend(settings)
        routed = settings.backend_route_channels
        if not routed:
            return cls(backend)
        return cls(Engine.from_settings(settings), dict.fromkeys(routed, backend))

    @property
    def all(self) -> list[Generator]:
        """Every generator once, the default one first."""
        return list(dict.fromkeys([self.default, *self.routes.values()]))

    def for_channel(self, channel: str) -> Generator:
        return self.routes.get(channel, self.default)

    @property
    def ready(self) -> bool:
        """The default generator is ready (a routed one's readiness shows in /health)."""
        return self.default.ready
