"""The Blueprint every module's routes use."""

from __future__ import annotations

import flask_smorest


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, with argument schemas built once.

    Given a schema class, webargs builds an instance of it on every request (~25 us);
    the same instance serves every request instead (marshmallow schemas are reusable).
    """

    def arguments(self, schema, *args, **kwargs):
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)
