"""sharinghub-lab in notebooks: the client of the server API, magics and widgets.

It talks to the Jupyter server over HTTP and never imports server code.
"""

__version__ = "0.1.0"
