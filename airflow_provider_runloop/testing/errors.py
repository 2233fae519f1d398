"""The one error type the emulator's domain code raises: it becomes a JSON ``{"message": ...}`` response."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An API error with its HTTP status; the app turns it into ``{"message": ...}`` with that status.

    Unknown ids are 404, invalid requests and state conflicts are 400 (never 409, which the SDK would
    retry): unverified choices 11 and 17, ``docs/emulator.md#choices-where-the-real-api-is-unverified``.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message

    @classmethod
    def not_found(cls, resource: str, resource_id: str) -> ApiError:
        return cls(404, f"{resource} {resource_id!r} not found")

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, message)
