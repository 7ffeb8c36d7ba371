"""Test controls under ``/_emulator/``: no API key, not logged, no faults, latency or rate limit."""

import copy
import re
from collections.abc import Callable

from .errors import invalid_request, not_found
from .store import Store
from .traffic import FORCEABLE, Faults, RateLimiter, RequestLog, TrafficConfig, config_update


class Control:
    """Handlers for the control endpoints; each returns ``(status, body)`` or raises ApiError."""

    def __init__(self, *, store: Store, log: RequestLog, faults: Faults, limiter: RateLimiter, config: TrafficConfig):
        self.store = store
        self.log = log
        self.faults = faults
        self.limiter = limiter
        self.config = config
        self.initial_config = copy.copy(config)
        self.routes: list[tuple[str, re.Pattern, Callable]] = [
            ("GET", re.compile(r"^/_emulator/log$"), self.log_get),
            ("POST", re.compile(r"^/_emulator/log/reset$"), self.log_reset),
            ("GET", re.compile(r"^/_emulator/config$"), self.config_get),
            ("POST", re.compile(r"^/_emulator/config$"), self.config_set),
            ("POST", re.compile(r"^/_emulator/force$"), self.force),
            ("POST", re.compile(r"^/_emulator/threads/(?P<thread_id>[^/]+)$"), self.thread_set),
            ("POST", re.compile(r"^/_emulator/sessions/(?P<session_id>[^/]+)/touch$"), self.session_touch),
            ("POST", re.compile(r"^/_emulator/sessions/(?P<session_id>[^/]+)/threads$"), self.thread_add),
            ("GET", re.compile(r"^/_emulator/state/threads$"), self.state_threads),
            ("GET", re.compile(r"^/_emulator/state/sessions$"), self.state_sessions),
            ("POST", re.compile(r"^/_emulator/reset$"), self.reset),
        ]

    def dispatch(self, method: str, path: str, body: object) -> tuple[int, object]:
        for route_method, pattern, handler in self.routes:
            found = pattern.match(path)
            if found and route_method == method:
                return handler(body if isinstance(body, dict) else {}, **found.groupdict())
        raise not_found("No control endpoint %s %s." % (method, path))

    def log_get(self, body: dict) -> tuple[int, dict]:
        return 200, self.log.snapshot()

    def log_reset(self, body: dict) -> tuple[int, dict]:
        self.log.reset()
        return 200, {"ok": True}

    def config_get(self, body: dict) -> tuple[int, dict]:
        return 200, self.config.as_dict()

    def config_set(self, body: dict) -> tuple[int, dict]:
        problems = config_update(self.config, body)
        if problems:
            raise invalid_request("Invalid config: %s." % "; ".join(problems))
        self.store.behaviour.interrupt_delay_ms = self.config.interrupt_delay_ms
        return 200, self.config.as_dict()

    def force(self, body: dict) -> tuple[int, dict]:
        status = body.get("status")
        count = body.get("count", 1)
        if status not in FORCEABLE:
            raise invalid_request("status: must be 429, 500, 529 or \"drop\", got %r." % (status,))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise invalid_request("count: must be a whole number of responses, got %r." % (count,))
        self.faults.force(status, count)
        return 200, {"pending": self.faults.pending()}

    def thread_set(self, body: dict, thread_id: str) -> tuple[int, dict]:
        return 200, self.store.control_thread_set(thread_id, body)

    def session_touch(self, body: dict, session_id: str) -> tuple[int, dict]:
        return 200, self.store.control_session_touch(session_id, body)

    def thread_add(self, body: dict, session_id: str) -> tuple[int, dict]:
        return 200, self.store.control_thread_add(session_id, body)

    def state_threads(self, body: dict) -> tuple[int, list]:
        return 200, self.store.state_threads()

    def state_sessions(self, body: dict) -> tuple[int, list]:
        return 200, self.store.state_sessions()

    def reset(self, body: dict) -> tuple[int, dict]:
        """Regenerate the data from the seed, clear the log and forced faults, restore the start-up config."""
        for key, value in self.initial_config.as_dict().items():
            setattr(self.config, key, value)
        self.store.behaviour.interrupt_delay_ms = self.config.interrupt_delay_ms
        self.faults.reset()
        self.limiter.reset()
        self.log.reset()
        counts = self.store.reset()
        return 200, {
            "ok": True,
            "sessions": counts.sessions,
            "threads": counts.threads,
            "events": counts.events,
            "generation_seconds": counts.generation_seconds,
        }
