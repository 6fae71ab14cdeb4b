"""Tests of chaos/: images built without a registry, clusters in Docker containers."""
