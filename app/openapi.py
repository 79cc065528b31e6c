"""OpenAPI generation: closed request bodies, and ids documented as the UUIDs they are.

Litestar documents a msgspec ``Struct`` as an open object even when the struct has
``forbid_unknown_fields=True`` and the server answers 400 to an extra field; a client (or a
schema fuzzer) reading the document would then send bodies the server refuses. And it does
not know ``app.inputs.Id`` (a ``UUID`` subclass) at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from app.inputs import Id

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's struct schema, closed (``additionalProperties: false``) for ``forbid_unknown_fields`` structs.

    A struct whose class sets ``MIN_FIELDS`` (a body that must set at least that many fields) is
    documented with that ``minProperties``.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return super().is_plugin_supported_field(field_definition) and bool(
            field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        schema.min_properties = getattr(field_definition.type_, "MIN_FIELDS", None)
        return schema


class IdSchemaPlugin(OpenAPISchemaPlugin):
    """``Id`` is documented as Litestar documents ``UUID``: ``{type: string, format: uuid}``."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return field_definition.annotation is Id

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        return Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID)
