"""Synthetic IDDS registry data: latent truth (Stage A) and EMR rendering (Stage B)."""

from __future__ import annotations

from .deliveries import generate

__all__ = ["generate"]
