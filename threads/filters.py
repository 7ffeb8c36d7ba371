"""Filters shared by the sessions list, the threads list, archive jobs and usage.

A filter arrives as query parameters (the URL holds it, so a view can be shared and
the back button works), is validated by a form, and becomes a frozen `ThreadFilter`.
An archive job stores `ThreadFilter.as_query()` as the filter it was given, and
`selectors.thread_list_filtered` turns it into a queryset the same way for every caller.
"""

from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from threads.models import AgentType, SnapshotStatus

ARCHIVED_CHOICES = [("no", "Not archived"), ("yes", "Archived"), ("all", "All")]
KIND_CHOICES = [("all", "All threads"), ("primary", "Primary only"), ("child", "Children only")]
MAX_TEXT_LENGTH = 200


class SnapshotFilterForm(forms.Form):
    """Validate filter query parameters; every field is optional."""

    status = forms.MultipleChoiceField(choices=SnapshotStatus.choices, required=False)
    agent = forms.CharField(max_length=MAX_TEXT_LENGTH, required=False, strip=True)
    model = forms.CharField(max_length=MAX_TEXT_LENGTH, required=False, strip=True)
    created_from = forms.DateField(required=False, label="Created on or after")
    created_to = forms.DateField(required=False, label="Created on or before")
    archived = forms.ChoiceField(choices=ARCHIVED_CHOICES, required=False)
    q = forms.CharField(max_length=MAX_TEXT_LENGTH, required=False, strip=True, label="Search")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date must not be after the end date.")
        return cleaned


class ThreadFilterForm(SnapshotFilterForm):
    # Advisor threads have no agent id or name, so `agent` cannot select them; this can.
    agent_type = forms.ChoiceField(choices=AgentType.choices, required=False, label="Agent type")
    kind = forms.ChoiceField(choices=KIND_CHOICES, required=False)
    session = forms.CharField(max_length=MAX_TEXT_LENGTH, required=False, strip=True)


@dataclass(frozen=True)
class ThreadFilter:
    """A validated filter over sessions or threads.

    `agent` matches an agent id or an agent name exactly; `agent_type` matches a
    thread's agent variant (agent, advisor or inline) and, like `kind` and `session`,
    is ignored by the sessions list. `q` matches ids, titles and metadata,
    case-insensitively. Dates are inclusive and read in UTC.
    """

    statuses: tuple[str, ...] = ()
    agent: str = ""
    agent_type: str = ""
    model: str = ""
    created_from: date | None = None
    created_to: date | None = None
    archived: str = "no"
    q: str = ""
    kind: str = "all"
    session: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_valid(self) -> bool:
        return not self.errors

    def as_query(self) -> dict[str, list[str] | str]:
        """Return the filter as query parameters, leaving out defaults."""
        query: dict[str, list[str] | str] = {}
        if self.statuses:
            query["status"] = list(self.statuses)
        for name in ("agent", "agent_type", "model", "q", "session"):
            if getattr(self, name):
                query[name] = getattr(self, name)
        if self.created_from:
            query["created_from"] = self.created_from.isoformat()
        if self.created_to:
            query["created_to"] = self.created_to.isoformat()
        if self.archived != "no":
            query["archived"] = self.archived
        if self.kind != "all":
            query["kind"] = self.kind
        return query

    def as_querystring(self) -> str:
        return urlencode(self.as_query(), doseq=True)


def thread_filter_from_query(query) -> tuple[ThreadFilter, ThreadFilterForm]:
    """Validate query parameters (a QueryDict or a dict of lists) into a ThreadFilter.

    Invalid fields are dropped from the filter and reported in `ThreadFilter.errors`
    and on the returned form, so a page can show the message next to the field and
    still list what the valid fields select.
    """
    if hasattr(query, "getlist"):
        data = query
    else:
        from django.http import QueryDict

        data = QueryDict(mutable=True)
        for key, value in query.items():
            data.setlist(key, value if isinstance(value, list) else [value])

    form = ThreadFilterForm(data)
    form.is_valid()
    cleaned = {name: value for name, value in form.cleaned_data.items() if name not in form.errors}
    errors = {name: [str(message) for message in messages] for name, messages in form.errors.items()}

    thread_filter = ThreadFilter(
        statuses=tuple(cleaned.get("status") or ()),
        agent=cleaned.get("agent") or "",
        agent_type=cleaned.get("agent_type") or "",
        model=cleaned.get("model") or "",
        created_from=cleaned.get("created_from"),
        created_to=cleaned.get("created_to"),
        archived=cleaned.get("archived") or "no",
        q=cleaned.get("q") or "",
        kind=cleaned.get("kind") or "all",
        session=cleaned.get("session") or "",
        errors=errors,
    )
    return thread_filter, form


def thread_filter_problems(*, thread_filter: ThreadFilter, form: forms.Form) -> list[str]:
    """Return the filter's errors as messages for a page, each led by its field's label.

    A form-wide error, such as a start date after the end date, has no field and
    gets no label. Messages are plain text, so templates escape them.
    """
    problems = []
    for field_name, messages in thread_filter.errors.items():
        label = form.fields[field_name].label if field_name in form.fields else None
        for message in messages:
            if field_name == NON_FIELD_ERRORS:
                problems.append(message)
            else:
                problems.append("%s: %s" % (label or field_name.replace("_", " ").capitalize(), message))
    return problems
