"""sharinghub-lab server side: the catalog core (sources, STAC mapping, index, crawler) and,
on top of it, the Jupyter server extension. The core modules import nothing from Jupyter."""

__version__ = "0.1.0"
