"""The spec stage: load a YAML spec with line marks, validate it, fill defaults -> Spec."""

from capc.spec.validate import Spec, load_spec, schema, schema_default

__all__ = ["Spec", "load_spec", "schema", "schema_default"]
