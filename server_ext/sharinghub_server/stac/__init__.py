"""The STAC API over the catalog index: request parameters (GET query strings, POST bodies,
CQL2 filters) become :class:`~sharinghub_server.index.query.Query` objects here, with one
client-facing error per bad input. Like the index, nothing here depends on Jupyter or tornado;
the server extension's handlers are a thin layer on top.
"""
