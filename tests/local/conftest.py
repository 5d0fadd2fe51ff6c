"""Fixtures of the local tests: none shared yet; this folder's helpers are plain modules beside its tests
(tests/conftest.py has the network guard and the private working folder every folder uses)."""
