"""Kept for the agent protocol's models: the base now lives in `hub.api_schemas.common`."""
from __future__ import annotations

from hub.api_schemas.common import Strict

__all__ = ["Strict"]
