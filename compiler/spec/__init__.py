"""The spec stage: load a YAML spec with line marks (loader.py), apply --set (overrides.py), validate it (validate.py;
schema errors explained by schema_errors.py, Azure's submit-time rules in service_rules.py), fill defaults -> Spec."""

from capc.spec.validate import Spec, load_spec, schema, schema_default

__all__ = ["Spec", "load_spec", "schema", "schema_default"]
