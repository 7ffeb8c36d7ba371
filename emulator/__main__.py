"""Command line: ``python -m emulator --host 127.0.0.1 --port 8765 --seed 1``.

The first line on stdout is ``emulator listening on http://HOST:PORT``; logs go to stderr.
SIGTERM and SIGINT stop the server and exit with status 0.
"""

import argparse
import logging
import signal
import sys
import threading

from .generate import GenerationOptions
from .server import Emulator, EmulatorServer
from .store import Behaviour, Store
from .timefmt import now_us, parse_rfc3339
from .traffic import TrafficConfig

logger = logging.getLogger("emulator")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be a fraction from 0 to 1, got %s" % text)
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative, got %s" % text)
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be a whole number of 0 or more, got %s" % text)
    return value


def _children(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError("must be MIN:MAX with whole numbers, got %r" % text) from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError("needs 0 <= MIN <= MAX, got %r" % text)
    return low, high


def _anchor(text: str) -> int:
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time with a zone, such as 2026-03-15T10:00:00Z, got %r" % text) from None


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Offline stand-in for the Anthropic Managed Agents sessions and threads API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; only this address is bound (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free port (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data, faults and ids (default: %(default)s)")
    parser.add_argument("--api-key", default="sk-ant-emulator", help="the only accepted API key (default: %(default)s)")

    parser.add_argument("--sessions", type=_count, default=200, help="number of sessions to generate (default: %(default)s)")
    parser.add_argument(
        "--children",
        type=_children,
        default=(0, 12),
        metavar="MIN:MAX",
        help="child threads per session, a count range; each session also has one primary thread (default: 0:12)",
    )
    parser.add_argument(
        "--anchor",
        type=_anchor,
        default=None,
        help="ISO 8601 time with a zone that generated data ends at; data spans the 30 days before it (default: now)",
    )

    parser.add_argument("--latency-ms", type=_count, default=0, help="delay added to every API response, in milliseconds (default: 0)")
    parser.add_argument(
        "--rate-limit",
        type=_non_negative,
        default=0.0,
        help="API requests per second allowed across all clients; over it the reply is 429; 0 turns it off (default: 0)",
    )
    parser.add_argument("--fault-500", type=_fraction, default=0.0, help="fraction 0..1 of API requests that get a 500 api_error response (default: 0)")
    parser.add_argument("--fault-529", type=_fraction, default=0.0, help="fraction 0..1 of API requests that get a 529 overloaded_error response (default: 0)")
    parser.add_argument("--fault-drop", type=_fraction, default=0.0, help="fraction 0..1 of API requests whose connection is closed without a response (default: 0)")
    parser.add_argument("--fault-slow", type=_fraction, default=0.0, help="fraction 0..1 of API requests held for --slow-seconds before the response (default: 0)")
    parser.add_argument("--slow-seconds", type=_non_negative, default=30.0, help="hold time of a slow response, in seconds (default: 30)")

    parser.add_argument(
        "--workspace-id",
        default=None,
        help="workspace id of the API key; a request with a different anthropic-workspace-id header gets 403 (default: unset, header ignored)",
    )
    parser.add_argument(
        "--odd-records",
        type=_count,
        default=0,
        help="number of sessions (the newest) given 3 extra threads that strict SDK models reject (default: 0)",
    )

    parser.add_argument(
        "--primary-archive-status",
        type=int,
        choices=(400, 409),
        default=400,
        help="HTTP status for archiving a primary thread (default: 400)",
    )
    parser.add_argument(
        "--archived-session-thread-archive-status",
        type=int,
        choices=(200, 409),
        default=409,
        help="HTTP status for archiving a not-yet-archived thread of an archived session; 200 applies the normal thread rules (default: 409)",
    )
    parser.add_argument("--no-cascade", action="store_true", help="archiving a session leaves its threads unchanged")
    parser.add_argument(
        "--interrupt-delay-ms",
        type=_count,
        default=200,
        help="time after a user.interrupt until a running thread becomes idle, in milliseconds (default: 200)",
    )

    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="stderr log level; DEBUG logs every request (default: INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser_build().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    options = GenerationOptions(
        seed=args.seed,
        sessions=args.sessions,
        children_min=args.children[0],
        children_max=args.children[1],
        anchor_us=args.anchor if args.anchor is not None else now_us(),
        odd_records=args.odd_records,
        cascade=not args.no_cascade,
    )
    behaviour = Behaviour(
        primary_archive_status=args.primary_archive_status,
        archived_session_thread_archive_status=args.archived_session_thread_archive_status,
        cascade=not args.no_cascade,
        interrupt_delay_ms=args.interrupt_delay_ms,
    )
    config = TrafficConfig(
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        fault_500=args.fault_500,
        fault_529=args.fault_529,
        fault_drop=args.fault_drop,
        fault_slow=args.fault_slow,
        slow_seconds=args.slow_seconds,
        interrupt_delay_ms=args.interrupt_delay_ms,
    )
    store = Store(options, behaviour)
    emulator = Emulator.build(api_key=args.api_key, workspace_id=args.workspace_id, store=store, config=config, seed=args.seed)

    try:
        server = EmulatorServer((args.host, args.port), emulator)
    except OSError as exc:
        logger.error("Cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1

    def stop(signum: int, frame) -> None:
        logger.info("Received signal %d; stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    shown_host = "[%s]" % host if ":" in host else host
    print("emulator listening on http://%s:%d" % (shown_host, port), flush=True)
    logger.info("Listening on %s:%d", host, port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        logger.info("Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
