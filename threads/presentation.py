"""Read a snapshot's raw JSON into plain values the detail pages display.

A snapshot may carry a shape the SDK rejected (`parse_error`), so every reader here
accepts any JSON: a missing or mistyped field becomes None or an empty list, never an
exception. Values stay as the API sent them; templates escape them on output.
"""

from dataclasses import dataclass, field
from typing import Any

from threads.models import AgentType


@dataclass(frozen=True)
class ToolRow:
    """One tool of an agent snapshot, or one tool inside a toolset."""

    toolset: str
    name: str
    enabled: bool | None
    permission_policy: str | None
    detail: str = ""


@dataclass(frozen=True)
class AgentSnapshot:
    """An agent snapshot as the thread or session detail page shows it.

    `variant` is "agent" (saved, with id and version), "advisor" (only a model),
    "inline" (defined on the fly, no id), or an unknown type exactly as sent.
    """

    variant: str
    name: str | None = None
    agent_id: str | None = None
    version: Any = None
    description: str | None = None
    system: str | None = None
    model_id: str | None = None
    model_speed: str | None = None
    model_effort: str | None = None
    execution_identity: str | None = None
    tools: list[ToolRow] = field(default_factory=list)
    mcp_servers: list[dict[str, str | None]] = field(default_factory=list)
    skills: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def is_saved(self) -> bool:
        return self.variant == AgentType.AGENT

    @property
    def is_advisor(self) -> bool:
        return self.variant == AgentType.ADVISOR

    @property
    def is_inline(self) -> bool:
        return self.variant == AgentType.INLINE

    @property
    def is_known_variant(self) -> bool:
        return self.variant in AgentType.values


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _policy(config: dict) -> str | None:
    policy = config.get("permission_policy")
    if isinstance(policy, dict):
        return _text(policy.get("type"))
    return _text(policy)


def _enabled(config: dict) -> bool | None:
    enabled = config.get("enabled")
    return enabled if isinstance(enabled, bool) else None


def agent_snapshot_from_raw(raw_agent: Any) -> AgentSnapshot:
    """Read a thread's or session's `agent` object."""
    agent = _dict(raw_agent)
    variant = _text(agent.get("type")) or "unknown"

    model = agent.get("model")
    if isinstance(model, dict):
        model_id = _text(model.get("id"))
        model_speed = _text(model.get("speed"))
        model_effort = _text(_dict(model.get("effort")).get("type"))
    else:
        # The advisor's model is a bare model id string.
        model_id, model_speed, model_effort = _text(model), None, None

    identity = _dict(agent.get("execution_identity"))
    execution_identity = _text(identity.get("type"))
    if identity.get("role_arn"):
        execution_identity = "%s (%s)" % (execution_identity, identity.get("role_arn"))

    return AgentSnapshot(
        variant=variant,
        name=_text(agent.get("name")),
        agent_id=_text(agent.get("id")),
        version=agent.get("version") if isinstance(agent.get("version"), int | str) else None,
        description=_text(agent.get("description")),
        system=_text(agent.get("system")),
        model_id=model_id,
        model_speed=model_speed,
        model_effort=model_effort,
        execution_identity=execution_identity,
        tools=tool_rows_from_raw(agent.get("tools")),
        mcp_servers=[
            {
                "name": _text(server.get("name")),
                "url": _text(server.get("url")),
                "type": _text(server.get("type")),
            }
            for server in map(_dict, _list(agent.get("mcp_servers")))
        ],
        skills=[
            {
                "type": _text(skill.get("type")),
                "skill_id": _text(skill.get("skill_id")),
                "version": _text(skill.get("version")),
            }
            for skill in map(_dict, _list(agent.get("skills")))
        ],
    )


def tool_rows_from_raw(raw_tools: Any) -> list[ToolRow]:
    """Flatten toolsets into one row per tool with its enabled flag and permission policy.

    A toolset's `default_config` applies to the tools its `configs` leave out; it is
    listed as a row named "(default)".
    """
    rows: list[ToolRow] = []
    for tool in map(_dict, _list(raw_tools)):
        tool_type = _text(tool.get("type")) or "unknown"
        if tool_type == "custom":
            rows.append(
                ToolRow(
                    toolset="custom",
                    name=_text(tool.get("name")) or "(unnamed)",
                    enabled=None,
                    permission_policy=None,
                    detail=_text(tool.get("description")) or "",
                )
            )
            continue

        toolset = tool_type
        if tool_type == "mcp_toolset":
            toolset = "MCP: %s" % (_text(tool.get("mcp_server_name")) or "?")
        default_config = _dict(tool.get("default_config"))
        if default_config:
            rows.append(
                ToolRow(
                    toolset=toolset,
                    name="(default)",
                    enabled=_enabled(default_config),
                    permission_policy=_policy(default_config),
                )
            )
        for config in map(_dict, _list(tool.get("configs"))):
            domains = []
            if config.get("allowed_domains"):
                domains.append("allowed: %s" % ", ".join(map(str, _list(config.get("allowed_domains")))))
            if config.get("blocked_domains"):
                domains.append("blocked: %s" % ", ".join(map(str, _list(config.get("blocked_domains")))))
            rows.append(
                ToolRow(
                    toolset=toolset,
                    name=_text(config.get("name")) or _text(config.get("type")) or "(unnamed)",
                    enabled=_enabled(config),
                    permission_policy=_policy(config),
                    detail="; ".join(domains),
                )
            )
    return rows


@dataclass(frozen=True)
class TimingShares:
    """A thread's lifetime split into startup, active and idle seconds and percentages."""

    duration: float
    startup: float
    active: float
    idle: float

    def _percent(self, part: float) -> float:
        return round(100 * part / self.duration, 1) if self.duration > 0 else 0.0

    @property
    def startup_percent(self) -> float:
        return self._percent(self.startup)

    @property
    def active_percent(self) -> float:
        return self._percent(self.active)

    @property
    def idle_percent(self) -> float:
        return self._percent(self.idle)

    @property
    def idle_offset_percent(self) -> float:
        """Where the idle segment starts on a 0-100 bar."""
        return self._percent(self.startup + self.active)


def timing_shares(
    *, duration: float | None, startup: float | None, active: float | None
) -> TimingShares | None:
    """Split a duration into startup, active and idle time; None without a duration.

    Idle is what remains of the duration after startup and active time, never below 0.
    """
    if not duration or duration <= 0:
        return None
    startup = max(0.0, min(startup or 0.0, duration))
    active = max(0.0, min(active or 0.0, duration - startup))
    idle = max(0.0, duration - startup - active)
    return TimingShares(duration=duration, startup=startup, active=active, idle=idle)


def session_resources_from_raw(raw_resources: Any) -> list[dict[str, str | None]]:
    """Read a session's resources into (type, name, detail) rows."""
    rows = []
    for resource in map(_dict, _list(raw_resources)):
        resource_type = _text(resource.get("type")) or "unknown"
        name = (
            _text(resource.get("url"))
            or _text(resource.get("file_id"))
            or _text(resource.get("memory_store_id"))
            or _text(resource.get("id"))
        )
        detail = _text(resource.get("mount_path")) or _text(resource.get("branch")) or ""
        rows.append({"type": resource_type, "name": name, "detail": detail})
    return rows
