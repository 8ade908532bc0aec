"""Datasets under DVC: versions of a project and pull jobs into the workspace.

Nothing here imports ``dvc`` in the server process: DVC runs in a worker process
(:mod:`.worker`), which can report progress through the cache and be cancelled cleanly.
"""
