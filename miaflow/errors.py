"""The miaflow exception tree.

Every error says what went wrong and what to do about it. ``is_retryable()`` tells callers (and LangGraph
retry policies) whether trying again can help.
"""

from __future__ import annotations

__all__ = [
    "MiaflowError",
    "ModelError",
    "ModelUnavailableError",
    "ToolError",
    "CorpusError",
    "PlanError",
    "MemoryStoreError",
    "InvalidInputError",
    "MissingDependencyError",
]


class MiaflowError(Exception):
    """Base class of all miaflow errors."""

    retryable: bool = False

    def is_retryable(self) -> bool:
        return self.retryable


class InvalidInputError(MiaflowError, ValueError):
    """Bad input from the caller: an empty question, a non-finite reward, an unknown id."""


class ModelError(MiaflowError):
    """A chat model call failed for a reason retrying will not fix (bad request, bad credentials)."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None):
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class ModelUnavailableError(ModelError):
    """The model server could not be reached or kept failing after bounded retries."""

    retryable = True


class ToolError(MiaflowError):
    """A tool could not do what it was asked (for example a path outside the corpus root)."""


class CorpusError(ToolError):
    """A corpus is missing, empty or unreadable."""


class PlanError(MiaflowError):
    """A plan could not be produced or parsed at all."""


class MemoryStoreError(MiaflowError):
    """A memory store is corrupt, missing, or cannot be written."""


class MissingDependencyError(MiaflowError, ImportError):
    """An optional package is needed for this feature; the message names the extra to install."""
