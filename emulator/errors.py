"""The error raised by handlers and rendered as an Anthropic error envelope."""


class ApiError(Exception):
    """An HTTP error response: status code, ``error.type`` and a human-readable message.

    ``headers`` contains extra response headers, such as ``retry-after`` on a 429.
    """

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}


def invalid_request(message: str) -> ApiError:
    """Build a 400 ``invalid_request_error``."""
    return ApiError(400, "invalid_request_error", message)


def conflict(message: str) -> ApiError:
    """Build a 409 ``invalid_request_error``; Managed Agents endpoints never send ``conflict_error``."""
    return ApiError(409, "invalid_request_error", message)


def not_found(message: str) -> ApiError:
    """Build a 404 ``not_found_error`` without ``details``."""
    return ApiError(404, "not_found_error", message)
