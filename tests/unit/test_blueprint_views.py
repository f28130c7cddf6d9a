"""Our Blueprint's `arguments` and `response`: the view called with less in between, answering
every form a flask-smorest view may return exactly as flask-smorest's wrappers do."""

from __future__ import annotations

import flask_smorest
import pytest
from flask import Flask, jsonify
from marshmallow import Schema, fields

from app.http.blueprint import Blueprint


class Item(Schema):
    name = fields.String()
    secret = fields.String(load_only=True)


class Query(Schema):
    size = fields.Integer(load_default=1)


RETURNS = {
    "plain": lambda: {"name": "a", "secret": "s"},
    "status": lambda: ({"name": "b"}, 202),
    "headers": lambda: ({"name": "c"}, {"X-Extra": "1"}),
    "both": lambda: ({"name": "d"}, 203, {"X-Extra": "2"}),
    "response": lambda: jsonify(raw=True),
    "response_status": lambda: (jsonify(raw=True), 418),
}


def documented_app() -> tuple[Flask, flask_smorest.Api]:
    app = Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    return app, flask_smorest.Api(app)


def build(blueprint_class, status_code: int) -> Flask:
    app, api = documented_app()
    blp = blueprint_class("items", __name__, url_prefix="/items")
    for name, result in RETURNS.items():

        def view(query, kind, result=result):
            return result()

        view.__name__ = f"get_{name}"
        blp.route(f"/{name}/<kind>", endpoint=name)(
            blp.arguments(Query, location="query")(blp.response(status_code, Item)(view))
        )
    api.register_blueprint(blp)
    return app


def answer(app: Flask, path: str):
    response = app.test_client().get(path)
    return response.status_code, response.get_json(), response.headers.get("X-Extra")


@pytest.mark.parametrize("status_code", [200, 201])
@pytest.mark.parametrize("name", list(RETURNS))
def test_every_return_form_answers_as_flask_smorest_does(name, status_code):
    ours, theirs = build(Blueprint, status_code), build(flask_smorest.Blueprint, status_code)
    for path in (f"/items/{name}/x", f"/items/{name}/x?size=3"):
        assert answer(ours, path) == answer(theirs, path)
    status, body, _ = answer(ours, f"/items/{name}/x")
    if name == "plain":  # dumped through the schema: load_only fields never leave
        assert (status, body) == (status_code, {"name": "a"})


def test_bad_query_arguments_are_refused_as_flask_smorest_does():
    ours, theirs = build(Blueprint, 200), build(flask_smorest.Blueprint, 200)
    assert answer(ours, "/items/plain/x?size=big")[0] == answer(theirs, "/items/plain/x?size=big")[0] == 422


def test_the_view_receives_the_loaded_arguments_and_path_values():
    app, api = documented_app()
    blp = Blueprint("echo", __name__, url_prefix="/echo")

    @blp.route("/<kind>")
    @blp.arguments(Query, location="query")
    @blp.response(200)
    def echo(query, kind):
        return {"query": query, "kind": kind}

    api.register_blueprint(blp)
    assert app.test_client().get("/echo/k?size=4").get_json() == {"query": {"size": 4}, "kind": "k"}


@pytest.mark.parametrize("blueprint_class", [Blueprint, flask_smorest.Blueprint])
def test_an_async_view_is_left_to_flask_smorests_wrappers(blueprint_class):
    """Flask runs it through ensure_sync (here without the `async` extra: a 500, as with
    flask-smorest's own Blueprint), never dumps the coroutine object as if it were the result."""
    app, api = documented_app()
    blp = blueprint_class("async_items", __name__, url_prefix="/async")

    @blp.route("/<kind>")
    @blp.arguments(Query, location="query")
    @blp.response(200, Item)
    async def get_async(query, kind):
        return {"name": kind}

    api.register_blueprint(blp)
    assert app.test_client().get("/async/k").status_code == 500
