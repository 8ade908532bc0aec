"""sharinghub-lab in notebooks: ``import sharinghub_lab as sh`` and ``%load_ext
sharinghub_lab``.

It talks to the Jupyter server over HTTP and never imports server code. The API is
re-exported lazily (module ``__getattr__``): importing the package, or loading the
extension, imports neither requests nor pystac, mlflow, pandas, ipywidgets or folium.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "connect": "client", "SharingHubError": "errors",
    "search": "api", "item": "api", "download": "api", "versions": "api", "pull": "api",
    "PullJob": "api",
    "track": "api", "runs": "api", "register_model": "api", "index": "api", "crawl": "api",
    "mlflow_client": "api", "new_project": "api", "publish": "api", "PublishJob": "api",
    "edit_metadata": "api", "publish_permissions": "api",
}

__all__ = [*_EXPORTS, "load_ipython_extension", "panel"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sharinghub_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def panel() -> Any:
    """The Search, Runs, Register and Publish panels as tabs (ipywidgets), from
    :mod:`sharinghub_lab.widgets`, imported here: ``import sharinghub_lab`` loads neither
    ipywidgets nor ipyleaflet."""
    return importlib.import_module(".widgets", __name__).panel()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext sharinghub_lab``: registers ``%sharinghub``."""
    from .magics import SharingHubMagics

    ipython.register_magics(SharingHubMagics)
