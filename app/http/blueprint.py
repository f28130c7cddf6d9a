"""The Blueprint every module's routes use, and the parser that reads their arguments."""

from __future__ import annotations

import inspect
from copy import deepcopy
from functools import wraps
from weakref import WeakKeyDictionary

import flask_smorest
from flask import current_app, request
from flask_smorest.utils import (
    deepupdate,
    get_appcontext,
    resolve_schema_instance,
    set_status_and_headers_in_response,
    unpack_tuple_response,
)
from marshmallow import RAISE, Schema, ValidationError
from marshmallow.utils import missing
from webargs.flaskparser import FlaskParser
from werkzeug import Response

from app.http.body import SURROGATE_MESSAGE, request_body


class ArgumentsParser(FlaskParser):
    """webargs' Flask parser, reading the body app.http.body decoded and refusing unknown query parameters.

    The body is not parsed a second time: it is the one the before-request check decoded
    (or decodes now, with the same refusals, for an app that did not install the check).
    A query parameter the operation does not declare is a 422 on that parameter, so a
    misspelt `?limt=5` is not silently answered with the default page.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._no_query: WeakKeyDictionary[Schema, dict] = WeakKeyDictionary()  # what each loads from nothing

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        # A request with no query string at all (GET /wallet/balance/<id>, the hot read) loads
        # the same every time from a schema that says so (no default computed at load time):
        # loaded once instead of ~0.1 ms of webargs and marshmallow per request.
        if (
            location in ("query", "querystring")
            and getattr(argmap, "NO_QUERY_IS_CONSTANT", False)
            and not request._get_current_object().environ.get("QUERY_STRING")  # type: ignore[attr-defined]
        ):
            loaded = self._no_query.get(argmap)
            if loaded is None:
                loaded = self._no_query[argmap] = super().parse(argmap, req, location=location, **kwargs)
            return dict(loaded)
        return super().parse(argmap, req, location=location, **kwargs)

    def load_json(self, req, schema):
        body = request_body()
        if body is None:
            return missing
        if body.unencodable:  # checked here, after authentication, like every other bad field
            raise ValidationError({field: [SURROGATE_MESSAGE] for field in body.unencodable})
        return body.value


_DOC_ONLY = ("content_type", "required", "description", "example", "examples")


def _parser_options(kwargs: dict) -> dict:
    """arguments()' keyword arguments webargs' use_args takes (the rest only document)."""
    return {key: value for key, value in kwargs.items() if key not in _DOC_ONLY}


def _called_directly(documenting, wrapping):
    """A decorator wrapping a plain view with `wrapping` alone, documented by flask-smorest's
    `documenting` decorator; an `async def` view keeps flask-smorest's wrappers, which run
    it through Flask's ensure_sync."""

    def decorator(func):
        if inspect.iscoroutinefunction(func):
            return documenting(func)
        view = wrapping(func)
        view._apidoc = documenting(func)._apidoc  # where flask-smorest reads a view's docs
        return view

    return decorator


def operation_id(view_name: str) -> str:
    """create_user -> createUser: the operationId a generated client names its function after."""
    first, *rest = view_name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, with our arguments parser, operation ids and extra tags.

    - Every operation's `operationId` is its view function's name in camelCase (`def
      reverse_transaction` -> `reverseTransaction`), unless `@blp.doc(operationId=...)` says
      otherwise; the OpenAPI tests require them unique.
    - `tags={"auth": "..."}` declares tags besides the blueprint's own, for routes given
      `tags=[...]` (the API lists each with its description).
    - Argument schemas are built once: given a schema class, webargs builds an instance of it
      on every request (~25 us); the same instance serves every request instead.
    - `arguments` and `response` document the operation exactly as flask-smorest's do, and
      call the view with less in between: flask-smorest wraps every view twice more, each
      wrapper asking the app (through a context proxy) whether the view is a coroutine, on
      every request. The question is asked once, when the route is declared: an `async def`
      view keeps flask-smorest's wrappers (and needs Flask's `async` extra, as before).
    """

    ARGUMENTS_PARSER = ArgumentsParser()

    def __init__(self, *args, tags: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.extra_tags = dict(tags or {})

    @staticmethod
    def doc(**kwargs):
        """flask-smorest's `doc`, written onto the view itself rather than a wrapper around it:
        the wrapper only called through, on every request (every route has one, from
        app.http.docs.errors)."""

        def decorator(func):
            apidoc = deepcopy(getattr(func, "_apidoc", {}))
            apidoc["manual_doc"] = deepupdate(deepcopy(apidoc.get("manual_doc", {})), kwargs)
            func._apidoc = apidoc
            return func

        return decorator

    def arguments(self, schema, *args, **kwargs):
        schema = schema() if isinstance(schema, type) else schema
        # A body schema's EXAMPLE, a request that works after the README's steps, is where the
        # /docs page's "Try it out" starts (instead of strings generated from each field's pattern).
        if kwargs.get("location", "json") == "json" and getattr(schema, "EXAMPLE", None) is not None:
            kwargs.setdefault("example", schema.EXAMPLE)
        documenting = super().arguments(schema, *args, **kwargs)
        # webargs' wrapper straight around the view, without flask-smorest's between
        parsing = self.ARGUMENTS_PARSER.use_args(
            schema, location=kwargs.pop("location", "json"), **_parser_options(kwargs)
        )
        return _called_directly(documenting, parsing)

    def response(self, status_code, schema=None, **kwargs):
        documenting = super().response(status_code, schema, **kwargs)
        schema = resolve_schema_instance(schema)
        # Flask's default status: set again, it would be parsed again (~1 us).
        default_status = None if status_code == 200 else status_code

        def responding(func):
            @wraps(func)
            def respond(*args, **kwargs):
                result, status, headers = unpack_tuple_response(func(*args, **kwargs))
                if isinstance(result, Response):
                    set_status_and_headers_in_response(result, status, headers)
                    return result
                dumped = result if schema is None else schema.dump(result)
                get_appcontext()["result_dump"] = dumped  # what flask-smorest's ETag support reads
                response = current_app.json.response(self._prepare_response_content(dumped))
                set_status_and_headers_in_response(response, status if status is not None else default_status, headers)
                return response

            return respond

        return _called_directly(documenting, responding)

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        for method, doc in self._docs[endpoint].items():
            if method != "parameters":
                doc.setdefault("manual_doc", {}).setdefault("operationId", operation_id(obj.__name__))
