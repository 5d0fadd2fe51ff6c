"""capc: compile one YAML experiment spec into Azure ML v2 artifacts, and run them locally or on Azure."""

__version__ = "0.1.0"
