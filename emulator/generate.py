"""Deterministic demo data: saved agents, sessions, threads and events.

Everything is drawn from one ``random.Random(seed)`` in a fixed order, and every time
is an offset from the anchor, so the same seed, anchor and options give byte-identical
data. Sessions are spread over the 30 days before the anchor; no event is later than it.
"""

import base64
import random
from dataclasses import dataclass

from .aggregate import session_refresh
from .events import status_event, thread_created_event
from .models import (
    ADVISOR_AGENT_NAME,
    Event,
    Session,
    Thread,
    duration_seconds,
    money,
    thread_model_id,
    usage_cost_usd,
)
from .timefmt import MICROS_PER_SECOND, format_us

SECOND = MICROS_PER_SECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
SPREAD_US = 30 * DAY

MODEL_IDS = (
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-sonnet-4-6",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5",
    "claude-haiku-5-5",
    "claude-sonnet-5",
    "claude-fable-5-1",
)
ADVISOR_MODELS = ("claude-opus-4-8", "claude-opus-5")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
TOOL_NAMES = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
POLICIES = ("always_allow", "always_ask", "auto")

HTML_SCRIPT = "<script>alert(1)</script>"
HTML_IMG = '"><img src=x onerror=alert(1)>'
UNICODE_RTL = "\u202eevil.exe\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0301e\u200b\U0001f9ea \u4f60\u597d"
LONG_TEXT = ("Long text for layout tests. " * 400)[:10_240]
LONG_METADATA_VALUE = ("m" * 511) + "\u00e9"

SAVED_AGENT_NAMES = (
    "Research lead",
    "Web researcher",
    HTML_IMG + " Reviewer",
    "\u0645\u0633\u0627\u0639\u062f \u0627\u0644\u0628\u062d\u062b " + UNICODE_RTL,
    "Release notes writer",
    "Data analyst",
)
INLINE_AGENT_NAMES = (
    "extract-phase-worker",
    "summarize-phase-worker",
    "verify-phase-worker",
    HTML_SCRIPT,
    "triage-helper",
)
TITLE_TOPICS = (
    "Triage flaky CI on the payments service",
    "Quarterly report research",
    "Migrate billing cron to Celery beat",
    "Summarize customer interviews",
    "Draft release notes for 4.2",
    "Investigate p99 latency regression",
    "Audit IAM roles in staging",
    "Refactor the search indexer",
)
METADATA_TEAMS = ("platform", "growth", "research", "support", "infra")
MESSAGES = (
    "Found 3 sources and summarized them.",
    "Opened a pull request with the fix.",
    "The test suite passes on the branch.",
    "Here is the table you asked for.",
    "I need a decision before continuing.",
)

# Session plans: the final state the primary thread and the session end up in.
PLAN_WEIGHTS = (("running", 15), ("rescheduling", 5), ("idle", 55), ("terminated", 10), ("archived", 15))
# The first sessions generated get these plans, so even a small data set covers each one.
FIXED_PLANS = ("running", "idle", "rescheduling", "terminated", "archived")
CHILD_KINDS = ("agent", "advisor", "inline", "workflow")
CHILD_KIND_WEIGHTS = (55, 15, 10, 20)

# Final state of an agent or inline child thread, weighted per session plan.
CHILD_STATE_WEIGHTS = {
    "running": (("running_fresh", 20), ("running_again", 15), ("idle", 30), ("never_ran", 5), ("archived", 25), ("rescheduling", 5)),
    "rescheduling": (("rescheduling", 25), ("idle", 40), ("archived", 30), ("never_ran", 5)),
    "idle": (("idle", 60), ("archived", 30), ("terminated", 5), ("never_ran", 5)),
    "terminated": (("idle", 30), ("terminated", 30), ("archived", 40)),
    "archived": (("idle", 30), ("terminated", 30), ("archived", 40)),
}

_ID_TRANSLATION = bytes.maketrans(b"+/", b"xY")


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """Inputs of a generation run; ``anchor_us`` is the time the data ends at (microseconds)."""

    seed: int
    sessions: int
    children_min: int
    children_max: int
    anchor_us: int
    odd_records: int = 0
    cascade: bool = True


class IdFactory:
    """Make ids ``<prefix>_011C<20 letters and digits>`` from a seeded RNG.

    Random bytes are drawn in blocks of 1024 ids because that is several times faster
    than one draw per id. The ids still depend only on the RNG state.
    """

    BLOCK = 1024

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.buffer = ""
        self.position = 0

    def new(self, prefix: str) -> str:
        if self.position >= len(self.buffer):
            raw = base64.b64encode(self.rng.randbytes(15 * self.BLOCK)).translate(_ID_TRANSLATION)
            self.buffer = raw.decode("ascii")
            self.position = 0
        start = self.position
        self.position += 20
        return prefix + "_011C" + self.buffer[start : start + 20]


_cumulative_cache: dict[tuple, tuple[list, list]] = {}


def weighted(rng: random.Random, pairs: tuple) -> str:
    """Pick a name from ``((name, weight), ...)`` pairs."""
    table = _cumulative_cache.get(pairs)
    if table is None:
        names = [name for name, _ in pairs]
        cumulative = []
        total = 0
        for _, weight in pairs:
            total += weight
            cumulative.append(total)
        table = _cumulative_cache[pairs] = (names, cumulative)
    return rng.choices(table[0], cum_weights=table[1])[0]


def ms(value_us: float) -> int:
    """Round a time in microseconds to whole milliseconds, the precision of rendered times."""
    return int(value_us) // 1000 * 1000


def usage_generate(rng: random.Random, *, active_seconds: float, model_id: str, with_cost: bool = True) -> dict:
    """Build plausible thread usage for ``active_seconds`` of running time.

    ``list_cost`` is whole cents at the emulator's invented prices, rounded for this thread
    alone. With ``with_cost`` false, ``list_cost`` and ``server_tool_use`` are left out, as
    the API does before cost tracking is available.
    """
    input_tokens = int(max(1.0, active_seconds) * rng.uniform(40, 320))
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": int(input_tokens * rng.uniform(0.04, 0.3)),
        "cache_read_input_tokens": int(input_tokens * rng.choice((0, 0.5, 1.5, 3.0, 5.0))),
        "cache_creation": {
            "ephemeral_5m_input_tokens": int(input_tokens * rng.uniform(0, 0.5)),
            "ephemeral_1h_input_tokens": int(input_tokens * rng.choice((0, 0, 0, 0.2))),
        },
        "active_seconds": round(active_seconds, 3),
    }
    if with_cost:
        usage["list_cost"] = money(usage_cost_usd(usage, model_id))
        usage["server_tool_use"] = {
            "web_fetch_requests": rng.choice((0, 0, 1, 3, 8)),
            "web_search_requests": rng.choice((0, 0, 2, 5, 13)),
        }
    return usage


class Generator:
    """One generation run. Call ``run()`` once; it returns sessions sorted by (created_at, id)."""

    def __init__(self, options: GenerationOptions):
        self.options = options
        self.rng = random.Random(options.seed)
        self.ids = IdFactory(self.rng)
        self.anchor = options.anchor_us
        self.environments = [self.ids.new("env") for _ in range(3)]
        self.saved_agents = self._saved_agents()
        self.inline_agents = [self._inline_agent(index, name) for index, name in enumerate(INLINE_AGENT_NAMES)]

    # Agents

    def _model(self) -> dict:
        rng = self.rng
        return {"id": rng.choice(MODEL_IDS), "speed": rng.choice(("standard", "standard", "fast")), "effort": {"type": rng.choice(EFFORTS)}}

    def _toolset(self) -> dict:
        rng = self.rng
        configs = []
        for name in rng.sample(TOOL_NAMES, rng.randint(2, len(TOOL_NAMES))):
            config = {"type": name, "name": name, "enabled": rng.random() < 0.85, "permission_policy": {"type": rng.choice(POLICIES)}}
            if name in ("web_fetch", "web_search") and rng.random() < 0.3:
                config["allowed_domains"] = ["docs.python.org", "example.com"]
            configs.append(config)
        return {
            "type": "agent_toolset_20260401",
            "configs": configs,
            "default_config": {"enabled": True, "permission_policy": {"type": "always_allow"}},
        }

    def _tools_and_servers(self) -> tuple[list, list]:
        rng = self.rng
        tools = [self._toolset()]
        servers = []
        if rng.random() < 0.4:
            servers.append({"type": "url", "name": "tracker", "url": "https://mcp.example.com/tracker/sse"})
            tools.append(
                {
                    "type": "mcp_toolset",
                    "mcp_server_name": "tracker",
                    "configs": [{"name": "create_issue", "enabled": True, "permission_policy": {"type": "always_ask"}}],
                    "default_config": {"enabled": True, "permission_policy": {"type": "always_ask"}},
                }
            )
        if rng.random() < 0.4:
            tools.append(
                {
                    "type": "custom",
                    "name": "lookup_ticket",
                    "description": "Look up a ticket in the demo tracker.",
                    "input_schema": {"type": "object", "properties": {"ticket": {"type": "string"}}, "required": ["ticket"]},
                }
            )
        return tools, servers

    def _skills(self) -> list:
        rng = self.rng
        skills = []
        if rng.random() < 0.5:
            skills.append({"type": "anthropic", "skill_id": rng.choice(("xlsx", "pdf", "docx")), "version": "1"})
        if rng.random() < 0.3:
            skills.append({"type": "custom", "skill_id": self.ids.new("skill"), "version": str(rng.randint(1, 9))})
        return skills

    def _identity(self) -> dict:
        if self.rng.random() < 0.2:
            return {"type": "aws_role", "role_arn": "arn:aws:iam::123456789012:role/emulator-agent"}
        return {"type": "service_account"}

    def _saved_agents(self) -> list[list[dict]]:
        """Build 4 to 6 saved agents, each a list of 1 to 3 version snapshots (thread-agent shape)."""
        rng = self.rng
        agents = []
        for index in range(rng.randint(4, 6)):
            agent_id = self.ids.new("agent")
            name = SAVED_AGENT_NAMES[index]
            versions = []
            for version in range(1, rng.randint(1, 3) + 1):
                system = "You are %s, a demo agent with fake data. Version %d." % (name, version)
                if index == 0 and version == 1:
                    system = HTML_SCRIPT + " " + system
                if index == 3 and version == 1:
                    system = LONG_TEXT
                tools, servers = self._tools_and_servers()
                versions.append(
                    {
                        "type": "agent",
                        "id": agent_id,
                        "version": version,
                        "name": name,
                        "description": None if rng.random() < 0.2 else "Demo agent %s (fake data)." % name,
                        "system": None if index == 4 else system,
                        "model": self._model(),
                        "execution_identity": self._identity(),
                        "mcp_servers": servers,
                        "skills": self._skills(),
                        "tools": tools,
                    }
                )
            agents.append(versions)
        return agents

    def _inline_agent(self, index: int, name: str) -> dict:
        tools, servers = self._tools_and_servers()
        return {
            "type": "inline",
            "name": name,
            "description": None if index % 2 else "Inline worker %d defined by a workflow plan." % index,
            "system": "Process one input document and report the result.",
            "model": self._model(),
            "execution_identity": {"type": "service_account"},
            "mcp_servers": servers,
            "skills": [],
            "tools": tools,
        }

    def _multiagent(self, roster: list[dict], advisor_model: str, kinds: list[str]) -> dict | None:
        if not kinds:
            return None
        if "inline" in kinds or "workflow" in kinds:
            return {
                "type": "multiagent_20261001",
                "advisor": {"type": "enabled", "model": advisor_model},
                "subagents": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": roster},
                "workflows": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
            }
        return {"type": "coordinator", "agents": roster + [{"type": "advisor", "model": advisor_model}]}

    # Session-level fields

    def _title(self, index: int) -> str | None:
        hostile = {3: HTML_SCRIPT, 5: HTML_IMG + " title", 7: UNICODE_RTL, 9: LONG_TEXT}
        if index in hostile:
            return hostile[index]
        if index % 6 == 0:
            return None
        return "%s (#%d)" % (self.rng.choice(TITLE_TOPICS), index)

    def _metadata(self, index: int) -> dict:
        rng = self.rng
        metadata = {}
        if rng.random() < 0.7:
            metadata["team"] = rng.choice(METADATA_TEAMS)
        if rng.random() < 0.4:
            metadata["ticket"] = "ENG-%d" % rng.randint(100, 9999)
        hostile = {2: HTML_SCRIPT, 4: UNICODE_RTL, 6: LONG_METADATA_VALUE, 8: HTML_IMG}
        if index in hostile:
            metadata["note"] = hostile[index]
        return metadata

    def _resources(self, created_us: int) -> list:
        rng = self.rng
        stamp = format_us(created_us)
        resources = []
        if rng.random() < 0.5:
            resources.append(
                {
                    "type": "github_repository",
                    "id": self.ids.new("sesrsc"),
                    "url": "https://github.com/example/%s" % rng.choice(("api", "web", "infra")),
                    "mount_path": "/workspace/repo",
                    "checkout": rng.choice(({"type": "branch", "name": "main"}, {"type": "commit", "sha": "0" * 40}, None)),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        if rng.random() < 0.3:
            resources.append(
                {
                    "type": "file",
                    "id": self.ids.new("sesrsc"),
                    "file_id": self.ids.new("file"),
                    "mount_path": "/workspace/input.csv",
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        if rng.random() < 0.2:
            resources.append(
                {
                    "type": "memory_store",
                    "memory_store_id": self.ids.new("memstore"),
                    "access": rng.choice(("read_write", "read_only")),
                    "description": "",
                    "instructions": None,
                    "mount_path": "/mnt/memory/notes",
                    "name": "notes",
                }
            )
        return resources

    def _outcomes(self, completed_us: int) -> list:
        if self.rng.random() >= 0.1:
            return []
        return [
            {
                "type": "outcome_evaluation",
                "outcome_id": self.ids.new("outc"),
                "description": "A summary table with one row per source.",
                "result": "satisfied",
                "iteration": 1,
                "explanation": "Every source has a row.",
                "completed_at": format_us(completed_us),
            }
        ]

    # Events

    def _event(self, session: Session, thread: Thread, at_us: int, body: dict, *, on_primary: bool) -> None:
        event_type = body.pop("type")
        event = Event(type=event_type, id=self.ids.new("sevt"), processed_us=at_us, thread_id=thread.id, on_primary=on_primary, fields=body)
        session.events.append(event)

    def _status_event(self, session: Session, thread: Thread, at_us: int, status: str) -> None:
        session.events.append(status_event(thread, status, at_us, self.ids.new("sevt")))

    def _message(self, session: Session, thread: Thread, at_us: int) -> None:
        body = {"type": "agent.message", "content": [{"type": "text", "text": self.rng.choice(MESSAGES)}]}
        self._event(session, thread, at_us, body, on_primary=thread.is_primary)

    # Threads

    def _thread_timeline(self, session: Session, thread: Thread, state: str, end_us: int) -> None:
        """Append the thread's events for its final ``state`` and set status, times, stats and usage.

        ``end_us`` is the latest time the thread may have activity at.
        """
        rng = self.rng
        created = thread.created_us
        run_start = created + (ms(rng.uniform(2, 8) * SECOND) if thread.is_primary else 200_000)
        span = max(end_us - run_start, 2 * SECOND)
        first_idle = run_start + ms(span * rng.uniform(0.3, 0.7))
        last = first_idle
        is_advisor = thread.agent.get("type") == "advisor"

        if not thread.is_primary:
            session.events.append(thread_created_event(thread, created, self.ids.new("sevt")))
        else:
            body = {"type": "user.message", "content": [{"type": "text", "text": session.title or "Start the task."}]}
            self._event(session, thread, created, body, on_primary=True)

        if state == "never_ran":
            thread.status = "idle"
            thread.updated_us = created
            return

        self._status_event(session, thread, run_start, "running")
        self._message(session, thread, run_start + (first_idle - run_start) // 2 // 1000 * 1000)
        active = (first_idle - run_start) / SECOND
        with_usage = True

        if state == "running_fresh":
            thread.status = "running"
            active = (self.anchor - run_start) / SECOND
            last = run_start
            with_usage = False
        elif state in ("running_again", "rescheduling"):
            self._status_event(session, thread, first_idle, "idle")
            last = first_idle + ms((end_us - first_idle) * rng.uniform(0.2, 0.9))
            if state == "running_again":
                thread.status = "running"
                self._status_event(session, thread, last, "running")
                active += (self.anchor - last) / SECOND
            else:
                thread.status = "rescheduling"
                self._status_event(session, thread, last, "rescheduling")
        elif state == "idle":
            thread.status = "idle"
            self._status_event(session, thread, first_idle, "idle")
        elif state in ("terminated", "archived"):
            thread.status = "terminated"
            if not is_advisor:
                self._status_event(session, thread, first_idle, "idle")
            last = first_idle + ms((end_us - first_idle) * rng.uniform(0.1, 0.9))
            self._status_event(session, thread, last, "terminated")
            if state == "archived":
                thread.archived_us = last
        else:
            raise ValueError("unknown thread state %r" % state)

        thread.updated_us = last
        frozen = thread.status == "terminated"
        thread.stats = {
            "startup_seconds": round((run_start - created) / SECOND, 3) if thread.is_primary else 0.0,
            "active_seconds": round(max(active, 0.0), 3),
            "duration_seconds": duration_seconds(created, last if frozen else self.anchor),
        }
        if with_usage:
            thread.usage = usage_generate(
                rng,
                active_seconds=thread.stats["active_seconds"],
                model_id=thread_model_id(thread.agent),
                with_cost=rng.random() >= 0.05,
            )

    def _new_thread(self, session: Session, *, agent: dict, parent: str | None, created_us: int, workflow: tuple[str | None, bool]) -> Thread:
        name = ADVISOR_AGENT_NAME if agent.get("type") == "advisor" else agent.get("name", "")
        thread = Thread(
            id=self.ids.new("sthr"),
            session_id=session.id,
            agent=agent,
            agent_name=name,
            parent_thread_id=parent,
            workflow_run_id=workflow[0],
            run_open=workflow[1],
            status="idle",
            created_us=created_us,
            updated_us=created_us,
        )
        session.threads.append(thread)
        return thread

    def _child_state(self, kind: str, plan: str, run_open: bool) -> str:
        rng = self.rng
        if kind == "advisor":
            if plan == "running" and rng.random() < 0.3:
                return "running_fresh"
            return "archived" if rng.random() < 0.3 else "terminated"
        if kind == "workflow" and run_open:
            if plan == "running":
                return rng.choice(("running_fresh", "idle", "never_ran"))
            return rng.choice(("idle", "idle", "never_ran"))
        if kind == "workflow":
            return weighted(rng, (("archived", 65), ("idle", 25), ("terminated", 10)))
        return weighted(rng, CHILD_STATE_WEIGHTS[plan])

    # Sessions

    def _session(self, index: int) -> Session:
        rng = self.rng
        anchor = self.anchor
        plan = FIXED_PLANS[index] if index < len(FIXED_PLANS) else weighted(rng, PLAN_WEIGHTS)
        live = plan in ("running", "rescheduling")
        if live:
            created = ms(anchor - rng.uniform(5 * MINUTE, 12 * HOUR))
            end = anchor - SECOND
        else:
            created = ms(anchor - rng.uniform(HOUR, SPREAD_US))
            end = ms(min(created + rng.uniform(2 * MINUTE, 6 * HOUR), anchor - SECOND))

        saved = rng.choice(self.saved_agents)
        snapshot = rng.choice(saved)
        advisor_model = rng.choice(ADVISOR_MODELS)
        child_count = rng.randint(self.options.children_min, self.options.children_max)
        if index < len(FIXED_PLANS):
            kinds = [CHILD_KINDS[(position + index) % len(CHILD_KINDS)] for position in range(child_count)]
        else:
            kinds = rng.choices(CHILD_KINDS, CHILD_KIND_WEIGHTS, k=child_count)
        roster = [rng.choice(versions) for versions in self.saved_agents if versions is not saved][:3]
        multiagent = self._multiagent(roster, advisor_model, kinds)

        session = Session(
            id=self.ids.new("sesn"),
            agent={**snapshot, "multiagent": multiagent},
            title=self._title(index),
            environment_id=rng.choice(self.environments),
            metadata=self._metadata(index),
            resources=self._resources(created),
            outcome_evaluations=self._outcomes(end),
            budget={"type": "limit", "max_list_cost": {"amount": str(rng.choice((500, 2500, 10000))), "currency": "USD"}} if rng.random() < 0.3 else None,
            deployment_id=self.ids.new("depl") if rng.random() < 0.15 else None,
            vault_ids=[self.ids.new("vlt")] if rng.random() < 0.2 else [],
            created_us=created,
            updated_us=created,
        )

        primary = self._new_thread(session, agent=snapshot, parent=None, created_us=created, workflow=(None, False))
        primary_state = {"running": "running_again", "rescheduling": "rescheduling", "idle": "idle", "terminated": "terminated", "archived": "idle"}[plan]
        if plan == "running" and rng.random() < 0.2:
            primary_state = "running_fresh"
        self._thread_timeline(session, primary, primary_state, end)

        runs = []
        for _ in range(rng.randint(1, 2)):
            run_open = plan in ("running", "rescheduling", "idle") and rng.random() < 0.5
            runs.append((self.ids.new("wfrun"), run_open))
        child_times = sorted(ms(created + (end - created) * rng.uniform(0.05, 0.8)) for _ in kinds)
        for kind, child_created in zip(kinds, child_times):
            workflow = (None, False)
            if kind == "agent":
                agent = rng.choice(roster) if roster else snapshot
            elif kind == "advisor":
                agent = {"type": "advisor", "model": advisor_model}
            elif kind == "inline":
                agent = rng.choice(self.inline_agents)
            else:
                agent = rng.choice(self.inline_agents)
                workflow = rng.choice(runs)
            thread = self._new_thread(session, agent=agent, parent=primary.id, created_us=max(child_created, created + 1000), workflow=workflow)
            state = self._child_state(kind, plan, workflow[1])
            self._thread_timeline(session, thread, state, end)

        if plan == "archived":
            self._archive_session(session, end)

        session.threads.sort(key=lambda thread: thread.sort_key)
        session.events.sort(key=lambda event: event.sort_key)
        session.updated_us = max([session.created_us] + [thread.updated_us for thread in session.threads] + [session.archived_us or 0])
        frozen_until = session.updated_us if plan in ("terminated", "archived") else anchor
        session.stats = {"duration_seconds": duration_seconds(created, frozen_until)}
        primary_active = (primary.stats or {}).get("active_seconds", 0.0)
        children_active = sum((thread.stats or {}).get("active_seconds", 0.0) for thread in session.threads if not thread.is_primary)
        # Children mostly run while the primary waits on them, so a quarter of their time
        # adds to the wall time; it cannot exceed the session's duration.
        runtime = min(primary_active + 0.25 * children_active, session.stats["duration_seconds"])
        session.runtime_seconds = round(runtime, 3)
        session_refresh(session)
        return session

    def _archive_session(self, session: Session, end_us: int) -> None:
        """Archive a generated session, cascading to its threads unless cascade is off."""
        archived = ms(min(end_us + self.rng.uniform(MINUTE, 2 * DAY), self.anchor - SECOND))
        session.archived_us = archived
        primary = session.primary
        self._event(session, primary, archived, {"type": "session.status_terminated"}, on_primary=True)
        if not self.options.cascade:
            return
        for thread in session.threads:
            if thread.archived_us is not None:
                continue
            if thread.status != "terminated":
                thread.status = "terminated"
                if not thread.is_primary:
                    self._status_event(session, thread, archived, "terminated")
                if thread.stats:
                    thread.stats = {**thread.stats, "duration_seconds": duration_seconds(thread.created_us, archived)}
            thread.archived_us = archived
            thread.updated_us = archived

    def _odd_threads(self, session: Session) -> None:
        """Add three child threads that strict SDK models reject: unknown status, unknown agent type, no created_at."""
        primary = session.primary
        base = session.created_us + SECOND
        roster_agent = primary.agent
        oddities = (
            ({**roster_agent}, "paused_for_review", False),
            ({"type": "scripted_agent", "name": "Legacy scripted agent", "model": "claude-haiku-4-5"}, "idle", False),
            (roster_agent, "idle", True),
        )
        for offset, (agent, status, omit_created) in enumerate(oddities):
            thread = self._new_thread(session, agent=agent, parent=primary.id, created_us=base + offset * 1000, workflow=(None, False))
            thread.status = status
            thread.omit_created_at = omit_created
        session.threads.sort(key=lambda thread: thread.sort_key)
        session_refresh(session)

    def run(self) -> list[Session]:
        sessions = [self._session(index) for index in range(self.options.sessions)]
        sessions.sort(key=lambda session: session.sort_key)
        for session in sessions[::-1][: self.options.odd_records]:
            self._odd_threads(session)
        return sessions


def generate(options: GenerationOptions) -> list[Session]:
    """Generate the data set for ``options``; sessions come back sorted by (created_at, id)."""
    return Generator(options).run()
