"""One router module per resource; :data:`ROUTERS` is what the app includes."""

from __future__ import annotations

from service.routers import admin, feedback, health, leads, lookalikes, reps

ROUTERS = (
    health.router,
    leads.router,
    reps.router,
    lookalikes.router,
    feedback.router,
    admin.router,
)
