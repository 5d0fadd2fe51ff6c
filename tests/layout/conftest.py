"""Fixtures of the layout tests: none yet. These tests read capc's source (ast), never run it."""
