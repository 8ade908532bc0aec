"""sharinghub-lab server side: the catalog core (sources, STAC mapping, index, crawler) and,
on top of it, the Jupyter server extension. The core modules import nothing from Jupyter."""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    """Jupyter finds the extension here; the app module is imported only when it loads."""
    from .app import SharingHub

    return [{"module": "sharinghub_server", "app": SharingHub}]
