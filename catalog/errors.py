"""Errors the registration reports to the person running it."""

from __future__ import annotations


class CatalogError(Exception):
    """Bad input or a state the caller must fix; the message names the thing and the fix."""
