"""Fixtures of the reconciliation engine's tests: see :mod:`reconcile_world`."""

from reconcile_world import world

__all__ = ["world"]
