"""Publishing from the workbench (``sharinghub/api/publish/...``): new projects, dataset
versions and README front-matter edits, back to GitLab (or a local project folder), each
re-indexed at once.

Core code, no Jupyter: :class:`.service.Publisher` checks a request and does the quick work
(new projects, metadata) or starts a job (:mod:`.dataset`); the handlers only map HTTP onto it.
git and DVC run in child processes (:mod:`..datasets.gitops`, :mod:`..datasets.worker`), the
GitLab token reaches git only through the scoped credential helper, DVC remote credentials
only through the worker's stdin.
"""
