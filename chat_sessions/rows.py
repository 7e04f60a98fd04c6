"""Values to and from hand-written SQL, converted as the ORM converts them: parameters in, models out."""

from __future__ import annotations

import functools
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model


def model_from_row(
    model: type[Model], fields: list[Any], values: tuple[Any, ...], *, using: str = DEFAULT_DB_ALIAS
) -> Model:
    """An instance from raw column values, converted as the ORM converts them (JSON decoded...)."""
    converted = list(values)
    for index, converters in _row_converters(model, tuple(fields), using):
        for converter, column in converters:
            converted[index] = converter(converted[index], column, connections[using])
    return model.from_db(using, [field.attname for field in fields], converted)


@functools.cache
def _row_converters(model: type[Model], fields: tuple[Any, ...], using: str) -> list[tuple[int, list[Any]]]:
    """(index, [(converter, column)...]) for each field that has converters: looked up once, not per row."""
    found = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        database = connections[using]
        converters = database.ops.get_db_converters(column) + field.get_db_converters(database)
        if converters:
            found.append((index, [(converter, column) for converter in converters]))
    return found


def db_value(model: type[Model], field_name: str, value: Any, *, using: str = DEFAULT_DB_ALIAS) -> Any:
    """A value as the ORM sends it for `field_name = value` (a uuid as text on SQLite, and so on)."""
    field = model._meta.get_field(field_name)
    return field.get_db_prep_value(field.get_prep_value(value), connections[using], prepared=True)
