"""Shared state: what every later stage (local engine, Azure backend, serving, report) reads and writes under $CAPC_HOME.

    home.py      where the state lives ($CAPC_HOME, else .capc/)
    registry.py  the local model registry (MLflow model folders with a registration record)
    tracking.py  the MLflow tracking store: every run and child run, their tags and metrics
    held_out.py  a run's predictions on the rows it did not train on, stored with it as an artifact

It lives in its own stage folder because the local engine, the Azure backend, the endpoints and the report all
use it; none of them owns it.
"""
