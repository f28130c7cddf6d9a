"""The HTTP edge: error mapping, the OpenAPI-aware API object, request context helpers."""
