"""OpenAPI generation: request bodies that refuse unknown fields say so (``additionalProperties: false``).

Litestar documents a msgspec ``Struct`` as an open object even when the struct has
``forbid_unknown_fields=True`` and the server answers 400 to an extra field; a client (or a
schema fuzzer) reading the document would then send bodies the server refuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's struct schema, closed (``additionalProperties: false``) for ``forbid_unknown_fields`` structs."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return super().is_plugin_supported_field(field_definition) and bool(
            field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema
