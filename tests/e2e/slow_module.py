"""A test-only module with a slow route, to have a request in flight when the server stops."""

from __future__ import annotations

import time

from flask import jsonify, request

from app.kernel import Module


class SlowModule(Module):
    NAME = "slow"
    CRITICAL = False

    def register_routes(self, app) -> None:
        def slow():
            """Answer after ?seconds= (at most 5)."""
            time.sleep(min(float(request.args.get("seconds", "1")), 5.0))
            return jsonify({"status": "done"})

        app.add_url_rule("/slow", "slow", slow)
