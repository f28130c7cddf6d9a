"""Kernel endpoint bodies: liveness, readiness, health and module status (documentation only)."""

from __future__ import annotations

from marshmallow import Schema, fields

from app.kernel.manager import ModuleLifecycle
from app.schemas.common import EnumString

HEALTH_STATUSES = ["healthy", "degraded", "unhealthy"]


class LivenessSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["alive"]})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ready", "not_ready"]})
    reason = fields.String(
        metadata={"description": "Only when not_ready, why: e.g. `database schema not migrated`, `module X: failed`"}
    )


class EventBacklogSchema(Schema):
    backlog = fields.Integer(required=True, metadata={"description": "Deliveries owed (pending or failed)"})
    oldest_pending_seconds = fields.Float(
        required=True, metadata={"description": "Age of the oldest owed event; 0 when none"}
    )
    dead = fields.Integer(required=True, metadata={"description": "Deliveries out of attempts, awaiting a retry"})


class ModuleHealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": [*HEALTH_STATUSES, "disabled"]})
    module = fields.String(required=True)
    critical = fields.Boolean(
        required=True, metadata={"description": "An unhealthy critical module makes the service unhealthy"}
    )
    dependencies = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Each dependency's health or module status"},
    )
    last_check = fields.DateTime(format="iso", required=True)
    uptime = fields.Float(required=True, metadata={"description": "Seconds since the module started"})
    module_status = EnumString(
        ModuleLifecycle, metadata={"description": "Admins only; when the module is not initialized"}
    )
    details = fields.Dict(metadata={"description": "Admins only: the module's own check"})
    events = fields.Nested(
        EventBacklogSchema,
        allow_none=True,
        metadata={
            "description": "Admins only, for a module that handles events: its deliveries (null when unreadable); "
            "dead deliveries make it degraded"
        },
    )


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": HEALTH_STATUSES})
    modules = fields.Dict(keys=fields.String(), values=fields.Nested(ModuleHealthSchema), required=True)


class ModuleStatusSchema(Schema):
    status = EnumString(ModuleLifecycle, required=True)
    dependencies = fields.List(fields.String(), required=True)
    dependents = fields.List(fields.String(), required=True)
    load_position = fields.Integer(required=True)
    init_ms = fields.Float(required=True, allow_none=True, metadata={"description": "null unless it was built"})
    critical = fields.Boolean(required=True)
    source = fields.String(metadata={"description": "Admins only: where the module class came from"})
    routes = fields.List(fields.String(), metadata={"description": "Admins only: the paths the module serves"})
    reason = fields.String(
        allow_none=True, metadata={"description": "Admins only: why it failed, was skipped or disabled"}
    )


class ModulesStatusSchema(Schema):
    load_order = fields.List(fields.String(), required=True)
    modules = fields.Dict(keys=fields.String(), values=fields.Nested(ModuleStatusSchema), required=True)
