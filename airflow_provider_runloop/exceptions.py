"""Errors raised by the Runloop provider: one small hierarchy, every message actionable.

No exception here ever carries the API key: messages are built from the method, the path (never the
query string or headers), the status, the request id and a short excerpt of the response body, and
the client redacts every text the server or the transport provides before it gets here
(:mod:`airflow_provider_runloop.redaction`).
"""

from __future__ import annotations

__all__ = [
    "RunloopAPIError",
    "RunloopAuthenticationError",
    "RunloopBadRequestError",
    "RunloopBenchmarkRunFailedError",
    "RunloopCheckFailedError",
    "RunloopConflictError",
    "RunloopError",
    "RunloopInvalidRequestError",
    "RunloopInvalidResponseError",
    "RunloopNotFoundError",
    "RunloopRateLimitError",
    "RunloopRedirectError",
    "RunloopResultsNotReadyError",
    "RunloopServerError",
    "RunloopTimeoutError",
    "RunloopTransportError",
    "RunloopUnknownStateError",
]

_BODY_EXCERPT_CHARS = 300


class RunloopError(Exception):
    """Base class of every error raised by this provider.

    ``retryable`` says whether a later attempt may succeed where this one failed: the client retries
    such requests (within its retry policy), and a wait counts such a failed poll against its
    ``max_consecutive_poll_failures`` instead of ending at once
    (:func:`~airflow_provider_runloop.waiting.is_transient`). ``False`` unless a subclass says otherwise.
    """

    retryable: bool = False


class RunloopAPIError(RunloopError):
    """The Runloop API answered with a non-2xx status.

    :param status_code: the HTTP status of the response.
    :param method: the request method.
    :param path: the request path, without the query string.
    :param request_id: the ``x-request-id`` of the request (or of the response), if any.
    :param body: the response body; only a short excerpt is kept.
    :param hint: what the user should do next, appended to the message.
    :param retry_after: seconds the server asked the client to wait before retrying, if it said.
    """

    def __init__(
        self,
        status_code: int,
        method: str,
        path: str,
        *,
        request_id: str | None = None,
        body: str = "",
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        self.request_id = request_id
        self.body_excerpt = _excerpt(body)
        self.retry_after = retry_after
        message = f"Runloop API {method} {path} returned {status_code}"
        if self.body_excerpt:
            message += f": {self.body_excerpt}"
        if request_id:
            message += f" (request id {request_id})"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class RunloopBadRequestError(RunloopAPIError):
    """400 or 422: the request was rejected as invalid; retrying will not help."""


class RunloopAuthenticationError(RunloopAPIError):
    """401 or 403: the API key is missing, wrong, or lacks permission."""


class RunloopNotFoundError(RunloopAPIError):
    """404: no such resource (check the id and the connection's base URL)."""


class RunloopConflictError(RunloopAPIError):
    """409: the server reported a conflict (retried: Runloop uses it for lock time-outs)."""

    retryable = True


class RunloopRateLimitError(RunloopAPIError):
    """429: too many requests; retried, honouring ``Retry-After`` up to a cap."""

    retryable = True


class RunloopServerError(RunloopAPIError):
    """5xx (and 408): the server failed; the request is retried."""

    retryable = True


class RunloopTransportError(RunloopError):
    """No usable response: the connection failed, was dropped, or timed out."""

    retryable = True

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        super().__init__(f"Runloop API {method} {path} failed: {reason}")


class RunloopTimeoutError(RunloopTransportError):
    """The request timed out (connect, read, write or pool)."""


class RunloopRedirectError(RunloopTransportError):
    """The server redirected too many times (a redirect loop): no response to read.

    Not retried, since the next attempt follows the same redirects; check the connection's base URL
    (a proxy or a load balancer that redirects ``http`` to ``https`` and back, a wrong path prefix).
    """

    retryable = False


class RunloopInvalidRequestError(RunloopError, ValueError):
    """The request was never sent: httpx refused to write it (for example a header value with a line
    break in it).

    Not retried, since the same request fails the same way every time. It is also a ``ValueError``:
    like the checks made before a request, it means a value given to the client (the connection's API
    key, an argument) cannot be sent as it is.
    """

    retryable = False

    def __init__(self, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        super().__init__(
            f"Runloop API {method} {path} was not sent: the HTTP library refused to build the request "
            f"({reason}). This is not retried; check the connection's API key and the task's arguments."
        )


class RunloopInvalidResponseError(RunloopError):
    """The server answered 2xx but the body is not what the API promises.

    Raised for malformed or truncated JSON, a body that does not match the expected shape (a page of a
    listing without its items or ``has_more``, too), and a listing whose cursor does not advance. The
    pages of a listing are asked for again within the client's retry policy before this is raised.

    Retryable: a gateway or a lagging replica can garble one answer, so a wait spends its poll-failure
    budget on it. The client repeats only the requests that ask for it (reads; a repeated write could
    act twice).
    """

    retryable = True


class RunloopUnknownStateError(RunloopError):
    """The API reported a state this provider does not know; it fails closed instead of guessing."""


class RunloopResultsNotReadyError(RunloopError):
    """The benchmark run is not done (scenario runs still active, or expected ones not started).

    Raised before anything reaches the destination. Retry later, wait with ``RunloopBenchmarkRunSensor``
    first, or pass ``allow_partial=True`` to export what is there.
    """


class RunloopBenchmarkRunFailedError(RunloopError):
    """A benchmark run ended badly: the run failed or was canceled, or scenario runs failed."""


class RunloopCheckFailedError(RunloopError):
    """A benchmark run failed its checks (``RunloopBenchmarkRunCheckOperator``): a threshold, or a
    regression against its baseline. The message has the table of every rule.

    Not retryable: the same run fails the same checks again. The check operator raises it as an
    ``AirflowFailException`` too, so Airflow fails the task without retries.
    """


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    if len(text) > _BODY_EXCERPT_CHARS:
        return text[: _BODY_EXCERPT_CHARS - 1] + "…"
    return text
