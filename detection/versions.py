"""Installed package versions, written beside every result (an export's
metadata.json, a benchmark's report): a number means little without them."""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Dict, Iterable


def package_versions(packages: Iterable[str]) -> Dict[str, str]:
    """Python's version and each installed package's; absent ones left out."""
    found = {'python': platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found
