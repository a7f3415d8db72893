"""Domain errors. The engine raises these; api/responses.py maps each to one HTTP status."""

from __future__ import annotations


class CopygenError(Exception):
    """Base of every error copygen raises on purpose.

    ``message`` is safe to show to a client: it never contains request input.
    """

    type = "copygen_error"

    def __init__(
        self, message: str, *, field: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        #: Overrides the status table's Retry-After for this instance.
        self.retry_after_s = retry_after_s


class NotReady(CopygenError):
    """The model is still loading or warming up."""

    type = "not_ready"


class ModelUnavailable(CopygenError):
    """The model could not be found or loaded."""

    type = "model_unavailable"


class GenerationFailed(CopygenError):
    """The model runner raised while generating."""

    type = "generation_failed"


class DeadlineExceeded(CopygenError):
    """The request did not finish within its deadline (queue time included)."""

    type = "deadline_exceeded"


class QueueFull(CopygenError):
    """The generation queue is at its bound; the caller should retry later."""

    type = "queue_full"


class ModelNotFound(CopygenError):
    """An OpenAI-style request named a model this service does not serve."""

    type = "model_not_found"


class InvalidRequest(CopygenError):
    """A request that is well-formed but cannot be served as asked (a 422)."""

    type = "invalid_request"


class CircuitOpen(CopygenError):
    """The model failed repeatedly; generation is paused until a probe succeeds."""

    type = "circuit_open"


class MemoryPressure(CopygenError):
    """Memory is above its high mark; new generation work is shed until it recovers."""

    type = "memory_pressure"


class Draining(CopygenError):
    """The process is shutting down and takes no new work."""

    type = "draining"


class CacheUnavailable(CopygenError):
    """An operation that must reach the shared cache (invalidation) could not."""

    type = "cache_unavailable"


class BackendUnavailable(CopygenError):
    """The remote model server failed: unreachable, a 5xx, a broken stream."""

    type = "backend_unavailable"


class BackendOverloaded(CopygenError):
    """The remote model server asked copygen to slow down (its 429 or 503)."""

    type = "backend_overloaded"


class NotFound(CopygenError):
    """The tenant has no such resource (another tenant's is "not found" too, never 403)."""

    type = "not_found"


class PreconditionFailed(CopygenError):
    """If-Match named a version that is no longer the stored one: someone wrote in between."""

    type = "precondition_failed"


class StoreUnavailable(CopygenError):
    """The database (brands, examples, feedback) could not be reached or failed."""

    type = "store_unavailable"


class LimitExceeded(CopygenError):
    """A per-tenant quota (concurrent jobs, job items a day) is used up."""

    type = "limit_exceeded"


class RateLimited(CopygenError):
    """The caller's request limit or token budget (COPYGEN_TOKEN_BUDGET) is spent for now."""

    type = "rate_limited"
