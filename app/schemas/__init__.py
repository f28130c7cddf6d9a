"""Marshmallow schemas: input and output kept apart; they also generate the OpenAPI document."""
