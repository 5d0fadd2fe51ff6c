"""Fixtures of the state-stage tests (the model registry, spec locks, the run store under $CAPC_HOME): none shared
yet; tests/conftest.py gives each test its private working folder and $CAPC_HOME."""
