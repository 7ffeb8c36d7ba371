"""Per-user request rates for the REST API, with reads and writes counted apart.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] under the scopes `api_read`
and `api_write`, read on each request (not at import) so settings overrides apply.
A throttled request gets 429 with a Retry-After header.
"""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class _ScopedUserRateThrottle(UserRateThrottle):
    counts_safe_methods: bool

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if (request.method in SAFE_METHODS) != self.counts_safe_methods:
            return True
        return super().allow_request(request, view)


class ReadRateThrottle(_ScopedUserRateThrottle):
    """Limit GET, HEAD and OPTIONS requests per user (anonymous clients per IP address)."""

    scope = "api_read"
    counts_safe_methods = True


class WriteRateThrottle(_ScopedUserRateThrottle):
    """Limit POST, PUT, PATCH and DELETE requests per user (anonymous clients per IP address)."""

    scope = "api_write"
    counts_safe_methods = False
