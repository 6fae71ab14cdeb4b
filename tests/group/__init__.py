"""Tests of the group coordinator (impl.group)."""
