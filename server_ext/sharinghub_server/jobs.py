"""Long operations (DVC pulls and publishes) as jobs: run off the event loop, a bounded number
at once, with progress, a one-line error, and cancellation.

Core code: no Jupyter. The HTTP layer shows :meth:`Job.to_json` and calls :meth:`JobManager.cancel`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ENDED = ("done", "failed", "cancelled")


class JobError(RuntimeError):
    """A job failed for a reason the user can act on; the message is one line, no secrets."""


class Cancelled(Exception):
    """Raised inside a job's work when it notices it was cancelled."""


class JobConflict(RuntimeError):
    """A request about a job that cannot be honoured in its state (409)."""


@dataclass
class Job:
    kind: str  # "pull" | "publish"
    item: str
    rev: str | None
    dest: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "queued"
    files_done: int = 0
    files_total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    # set once a worker took the job: from then on only the work may say it ended (its
    # clean-up on cancel may still be running while the state says "queued")
    started: bool = field(default=False, repr=False)

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.id, "kind": self.kind, "item": self.item, "rev": self.rev,
            "dest": self.dest, "state": self.state, "files_done": self.files_done,
            "files_total": self.files_total, "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total, "error": self.error, "result": self.result,
        }


class JobManager:
    """Runs jobs in a small thread pool; a job for the same (kind, item, dest) as a running
    one joins it instead of starting another."""

    def __init__(self, max_workers: int = 2, keep: int = 200) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sh-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def submit(self, job: Job, work: Callable[[Job], dict[str, Any] | None], *,
               exclusive: bool = False) -> Job:
        """Run ``job``, or return the running job it duplicates; with ``exclusive``, a
        running job of the same kind and item is a JobConflict instead (two publishes of
        one item would race for its tags)."""
        with self._lock:
            for other in self._jobs.values():
                if other.ended or other.kind != job.kind or other.item != job.item:
                    continue
                if exclusive:
                    raise JobConflict(f"a {job.kind} of {job.item} is running (job "
                                      f"{other.id}); wait for it or cancel it")
                if other.dest == job.dest:
                    return other
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        with self._lock:
            if job.ended:
                raise JobConflict(f"job {job_id} already ended ({job.state})")
            job.cancel_event.set()
            if not job.started:
                job.state = "cancelled"
        return job

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            if not job.ended:
                job.cancel_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job, work: Callable[[Job], dict[str, Any] | None]) -> None:
        with self._lock:
            if job.cancel_event.is_set():
                job.state = "cancelled"
                return
            job.started = True
        try:
            job.result = work(job)
            job.state = "done"  # a cancel that came too late changes nothing on disk
        except Cancelled:
            job.state = "cancelled"
        except JobError as exc:
            job.error = _one_line(str(exc))
            job.state = "failed"
        except Exception as exc:  # a bug: say so in one line, keep the traceback in the log
            log.exception("sharinghub job %s failed", job.id)
            job.error = _one_line(f"{type(exc).__name__}: {exc}")
            job.state = "failed"

    def _forget_old(self) -> None:
        ended = [j for j in self._jobs.values() if j.ended]
        for job in ended[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job.id]


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."
