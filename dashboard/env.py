"""Read and validate the settings that come from the environment.

Every setting is read here, once, when `dashboard.settings` is imported. A value that
is missing or invalid raises `ImproperlyConfigured` with the variable's name, so the
web server, the worker and beat all refuse to start with the same message.
"""

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """Return the variable's value stripped of spaces, or `default` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, *, default: bool) -> bool:
    """Return the variable as a boolean; raise ImproperlyConfigured on any other word."""
    raw = os.environ.get(name)
    if raw is None:
        return default

    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        "%s must be one of true/false/1/0/yes/no/on/off, got %r." % (name, raw)
    )


def env_number(name: str, *, default: float, minimum: float, kind=float):
    """Return the variable as a number of the given kind, at least `minimum`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return kind(default)

    try:
        value = kind(raw)
    except ValueError:
        raise ImproperlyConfigured(
            "%s must be a %s, got %r." % (name, "whole number" if kind is int else "number", raw)
        ) from None
    if value < minimum:
        raise ImproperlyConfigured("%s must be at least %s, got %r." % (name, minimum, raw))
    return value


def env_url(name: str, *, schemes: set[str], default: str | None = None) -> str | None:
    """Return the variable as a URL whose scheme is one of `schemes`, or `default`."""
    value = env_str(name, default)
    if value is None:
        return None

    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(
            "%s must be a URL starting with %s, got a value starting with %r."
            % (name, " or ".join(sorted(s + "://" for s in schemes)), parsed.scheme + "://")
        )
    if not parsed.netloc and parsed.scheme not in {"sqlite"}:
        raise ImproperlyConfigured("%s has no host name." % name)
    return value
