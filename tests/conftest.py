"""Shared test configuration: the `privileged` marker skips without root."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip privileged tests when not root (CI runs them as root, for real)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: boots real clusters (namespaces, cgroups)")
    for item in items:
        if "privileged" in item.keywords:
            item.add_marker(skip)
