"""Error codes: each DomainError class carries its status and documentation; the edge derives its tables."""

from __future__ import annotations

import gc

import pytest

from app.http.errors import CODE_BY_HTTP_STATUS, EDGE_ERRORS, STATUS_BY_CODE, ErrorDoc, error_catalog
from app.services import errors
from app.services.errors import DomainError


def _classes_with_codes() -> list[type[DomainError]]:
    return [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, DomainError) and cls is not DomainError
    ]


def test_every_domain_error_is_in_the_catalog_with_what_its_class_says():
    catalog = error_catalog()
    classes = _classes_with_codes()
    assert len(classes) >= 12
    for cls in classes:
        assert catalog[cls.code] == ErrorDoc(cls.status, cls.description, cls.example), cls
        assert STATUS_BY_CODE[cls.code] == cls.status
        assert isinstance(cls.status, int) and 400 <= cls.status < 500, cls
    assert set(catalog) == set(EDGE_ERRORS) | {cls.code for cls in classes}


def test_a_new_code_inherits_nothing_it_must_declare():
    with pytest.raises(TypeError, match="declares code 'test_only_code' but not its own status, description"):

        class Half(DomainError):
            code = "test_only_code"

    gc.collect()  # the half-built class must not linger in DomainError.__subclasses__()
    assert "test_only_code" not in error_catalog()


def test_a_subclass_that_keeps_its_parents_code_adds_no_entry():
    class SpecificNotFound(errors.NotFound):
        message = "no such widget"

    try:  # a duplicate would make error_catalog() raise
        assert error_catalog()["not_found"] == ErrorDoc(404, errors.NotFound.description, {})
        assert SpecificNotFound().status == 404 and SpecificNotFound().code == "not_found"
    finally:
        del SpecificNotFound
        gc.collect()


def test_a_bare_http_status_answers_with_its_general_code():
    """Where several codes share a status, a bare status (werkzeug, gunicorn) gets the general one."""
    assert CODE_BY_HTTP_STATUS[401] == "unauthorized"
    assert 409 not in CODE_BY_HTTP_STATUS  # every conflict is a specific one
    assert CODE_BY_HTTP_STATUS[422] == "validation_error"
    assert CODE_BY_HTTP_STATUS[503] == "service_unavailable"
    assert all(STATUS_BY_CODE[code] == status for status, code in CODE_BY_HTTP_STATUS.items())
