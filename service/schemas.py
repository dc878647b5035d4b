"""Request and response bodies of the HTTP API (../shared/CONTRACT.md, section 3).

Every field has bounds, so a malformed body is a 422 naming the field, never a 500.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from service.store.models import utcnow

MAX_ITEMS = 5000
"""Most leads, outcomes, events or seeds in one request."""
MAX_LIMIT = 1000
"""Largest ``limit`` (rep list) or ``k`` (lookalikes)."""
MAX_TEXT = 10_000
MAX_INT = 2**53


def _no_nul(value: str) -> str:
    """Reject NUL characters (no database stores them in text)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: The moments a request may carry: what the library's nanosecond timestamps can hold
#: (1677-09-22 to 2262-04-11), in whole years (1678 to 2261). A moment outside is a 422
#: naming its field, not a 500 when the stored value is read back.
EARLIEST, END = datetime(1678, 1, 1), datetime(2262, 1, 1)


def _naive_utc(value: datetime) -> datetime:
    """A datetime as naive UTC (how the store keeps times), from EARLIEST, before END."""
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError as exc:
            raise ValueError("date out of range") from exc
    if not EARLIEST <= value < END:
        raise ValueError(f"date out of range: must be from {EARLIEST:%Y} to {END.year - 1}")
    return value


def _csv_strip(value: str) -> str:
    """Strip an id as the library strips a CSV cell (Python's ``str.strip``).

    pydantic's ``strip_whitespace`` leaves characters Python counts as whitespace (the
    separators U+001C-U+001F): the library then read another id than the service stored.
    """
    value = value.strip()
    if not value:
        raise ValueError("must not be empty or whitespace only")
    return value


Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
    AfterValidator(_csv_strip),
]
"""An id, read like a CSV cell: surrounding whitespace is not part of it."""
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), AfterValidator(_no_nul)]


def _cell(value: Any) -> str | int | float | bool | None:
    """A lead cell: a JSON string, finite number, boolean or null (read like a CSV cell)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError("integer beyond +-2**53; send it as a string")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("number must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"string longer than {MAX_TEXT} characters")
        return _no_nul(value)
    raise ValueError("must be a string, a number, true/false or null")


Cell = Annotated[
    Any,
    PlainValidator(_cell),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]
Moment = Annotated[datetime, AfterValidator(_naive_utc)]


_LEAD_EXAMPLE: dict[str, Any] = {
    "lead_id": "L-1001",
    "created_at": "2026-11-02T09:30:00",
    "source": "referral",
    "country": "DE",
    "pages_first_visit": 3,
}


class LeadIn(BaseModel):
    """A lead: the ``leads.csv`` columns as JSON strings or numbers (``lead_id`` required).

    ``created_at`` absent, null or empty means the lead arrives now: it is set to the time
    the request was received (UTC), which is also the day whose capacity a route takes.
    """

    model_config = ConfigDict(
        extra="allow",
        coerce_numbers_to_str=True,
        json_schema_extra={"examples": [_LEAD_EXAMPLE]},
    )
    __pydantic_extra__: dict[str, Cell] = Field(init=False)

    lead_id: Id

    @model_validator(mode="after")
    def _column_names(self) -> LeadIn:
        """Column names are short and free of NUL characters; no ``created_at`` is now."""
        extra = self.__pydantic_extra__
        for name in extra or {}:
            if not name or len(name) > 200 or "\x00" in name:
                raise ValueError(f"bad column name {name[:50]!r}: 1-200 characters, no NUL")
        created = None if extra is None else extra.get("created_at")
        if extra is not None and (created is None or str(created).strip() == ""):
            extra["created_at"] = utcnow().isoformat()
        return self


def _unique_leads(leads: list[LeadIn]) -> list[LeadIn]:
    """Reject a request that names one lead twice."""
    seen: set[str] = set()
    for lead in leads:
        if lead.lead_id in seen:
            raise ValueError(f"lead_id '{lead.lead_id}' appears more than once")
        seen.add(lead.lead_id)
    return leads


Leads = Annotated[
    list[LeadIn], Field(min_length=1, max_length=MAX_ITEMS), AfterValidator(_unique_leads)
]


class LeadsRequest(BaseModel):
    """``{"leads": [LEAD, ...]}``: the body of ``/v1/score`` and ``/v1/route``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"leads": [_LEAD_EXAMPLE]}]})

    leads: Leads


class Score(BaseModel):
    """One lead's score: probability of converting, 0-100 score, grade A-D, reasons."""

    lead_id: str
    probability: float
    score: int
    grade: str
    reasons: list[str]


class ScoresResponse(BaseModel):
    """Answer of ``/v1/score``, in request order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "scores": [
                        {
                            "lead_id": "L-1001",
                            "probability": 0.31,
                            "score": 74,
                            "grade": "B",
                            "reasons": [
                                "source = referral: +12 points",
                                "industry = software: +6 points",
                            ],
                        }
                    ]
                }
            ]
        }
    )

    scores: list[Score]


class Alternative(BaseModel):
    """A rep that could have taken the lead, with its win probability."""

    rep_id: str
    probability: float | None


class AssignmentOut(BaseModel):
    """Where a lead went. ``rep_id`` is null (with a ``reason``) when no rep could take it."""

    lead_id: str
    rep_id: str | None
    probability: float | None
    alternatives: list[Alternative]
    policy: str = Field(description="model, explore, holdout or none")
    propensity: float | None = Field(description="probability the policy had of this choice")
    reason: str | None = None


class RouteResponse(BaseModel):
    """Answer of ``/v1/route``, in request order; stored before it is sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "assignments": [
                        {
                            "lead_id": "L-1001",
                            "rep_id": "R-07",
                            "probability": 0.34,
                            "alternatives": [{"rep_id": "R-02", "probability": 0.29}],
                            "policy": "model",
                            "propensity": 1.0,
                            "reason": None,
                        }
                    ]
                }
            ]
        }
    )

    assignments: list[AssignmentOut]


class RepLead(BaseModel):
    """One of a rep's open leads."""

    lead_id: str
    probability: float
    reasons: list[str]


class RepLeadsResponse(BaseModel):
    """A rep's open leads, best first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rep_id": "R-07",
                    "leads": [
                        {"lead_id": "L-1001", "probability": 0.34, "reasons": ["segment fit"]}
                    ],
                }
            ]
        }
    )

    rep_id: str
    leads: list[RepLead]


class LookalikeRequest(BaseModel):
    """Seeds (account ids, or lead ids where the data has no accounts) and how many to find."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"seeds": ["A-0001", "A-0042"], "k": 10}]}
    )

    seeds: Annotated[list[Id], Field(min_length=1, max_length=MAX_ITEMS)]
    k: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 10
    exclude_customers: bool = False


class Lookalike(BaseModel):
    """A similar account (or lead) and its similarity to the seeds.

    ``similarity``: in the default whitened ICP space, standard deviations from the
    catalogue's mean along the seeds' direction (0 = an average row; higher = more like
    the seeds in what converts).
    """

    id: str
    similarity: float


class LookalikeResponse(BaseModel):
    """Answer of ``/v1/lookalikes``, most similar first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"results": [{"id": "A-0107", "similarity": 2.41}]}]}
    )

    results: list[Lookalike]


class OutcomeIn(BaseModel):
    """The outcome of a lead worked by a rep; sending it again overwrites it."""

    lead_id: Id
    rep_id: Id
    outcome: Literal["won", "lost", "open"]
    closed_at: Moment | None = None
    value: Annotated[FiniteFloat, Field(ge=0)] | None = None


class OutcomesRequest(BaseModel):
    """``{"outcomes": [...]}``: stored whole or not at all."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "outcomes": [
                        {
                            "lead_id": "L-1001",
                            "rep_id": "R-07",
                            "outcome": "won",
                            "closed_at": "2026-11-20T16:00:00",
                            "value": 12000,
                        }
                    ]
                }
            ]
        }
    )

    outcomes: Annotated[list[OutcomeIn], Field(min_length=1, max_length=MAX_ITEMS)]


class EventIn(BaseModel):
    """An engagement event of a lead."""

    lead_id: Id
    event: Id
    at: Moment
    weight: FiniteFloat | None = None


class EventsRequest(BaseModel):
    """``{"events": [...]}``: stored whole or not at all."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "lead_id": "L-1001",
                            "event": "pricing_page",
                            "at": "2026-11-03T10:00:00",
                            "weight": 2.0,
                        }
                    ]
                }
            ]
        }
    )

    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_ITEMS)]


class StoredResponse(BaseModel):
    """How many rows a write stored (committed before this answer)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"stored": 1}]})

    stored: int


class ReloadRequest(BaseModel):
    """The model folder to load and swap in."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"path": "models/2026-11-01"}]})

    path: Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_no_nul)]


class ReloadResponse(BaseModel):
    """The version now serving and the one it replaced."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"version": "20261101-ab12", "previous": "20261001-9f3c"}]}
    )

    version: str
    previous: str | None


class Health(BaseModel):
    """Liveness."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class Ready(BaseModel):
    """Readiness: a model is loaded and the database answers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ready", "model_version": "20261101-ab12", "database": True}]
        }
    )

    status: Literal["ready", "not ready"]
    model_version: str | None
    database: bool


class ErrorItem(BaseModel):
    """One problem with a request: ``field`` is its JSON path (``leads[0].created_at``)."""

    field: str
    msg: str
    type: str
    loc: list[Any]


class Problem(BaseModel):
    """An error answer: ``detail`` is a sentence or a list naming the fields at fault."""

    detail: str | list[ErrorItem]


class RepUpdate(BaseModel):
    """A rep's routing settings: most new leads a day (null = no cap) and whether active."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"capacity": 8, "active": True}]}
    )

    capacity: Annotated[int, Field(ge=0, le=1_000_000)] | None
    active: bool = True


class RepOut(BaseModel):
    """A rep as the store routes to it."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rep_id": "R-07", "capacity": 8, "active": True}]}
    )

    rep_id: str
    capacity: int | None
    active: bool
