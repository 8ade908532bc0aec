"""The job runner on its own: bounded workers, joining, cancel, one-line errors."""

from __future__ import annotations

import threading
import time

import pytest

from sharinghub_server.jobs import Cancelled, Job, JobConflict, JobError, JobManager


def wait_ended(job: Job, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not job.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.ended


def test_a_job_runs_and_reports_its_result():
    jobs = JobManager(max_workers=1)
    job = jobs.submit(Job("pull", "g/p", None, "p"), lambda j: {"ok": 1})
    wait_ended(job)
    assert job.state == "done" and job.result == {"ok": 1} and job.error is None
    jobs.shutdown()


def test_same_item_and_dest_joins_the_running_job_and_cancel_stops_it():
    release = threading.Event()
    started = threading.Event()

    def work(job: Job):
        started.set()
        while not release.wait(0.01):
            job.check_cancelled()

    jobs = JobManager(max_workers=2)
    first = jobs.submit(Job("pull", "g/p", None, "p"), work)
    started.wait(5)
    assert jobs.submit(Job("pull", "g/p", "v2", "p"), work) is first
    other = jobs.submit(Job("pull", "g/p", None, "elsewhere"), lambda j: None)
    assert other is not first
    jobs.cancel(first.id)
    wait_ended(first)
    assert first.state == "cancelled"
    with pytest.raises(JobConflict):
        jobs.cancel(first.id)
    jobs.shutdown()


def test_queued_jobs_wait_for_a_free_worker_and_can_be_cancelled_while_queued():
    release = threading.Event()
    jobs = JobManager(max_workers=1)
    busy = jobs.submit(Job("pull", "a/a", None, "a"), lambda j: release.wait(5))
    queued = jobs.submit(Job("pull", "b/b", None, "b"), lambda j: {"ran": True})
    assert queued.state == "queued"
    jobs.cancel(queued.id)
    release.set()
    wait_ended(busy)
    wait_ended(queued)
    assert queued.state == "cancelled" and queued.result is None
    jobs.shutdown()


def test_errors_are_one_line():
    def fail(job):
        raise JobError("dvc pull failed:\n  missing   object\n")

    def bug(job):
        raise KeyError("x")

    jobs = JobManager()
    a = jobs.submit(Job("pull", "a/a", None, "a"), fail)
    b = jobs.submit(Job("pull", "b/b", None, "b"), bug)
    c = jobs.submit(Job("pull", "c/c", None, "c"), lambda j: (_ for _ in ()).throw(Cancelled()))
    for job in (a, b, c):
        wait_ended(job)
    assert a.state == "failed" and a.error == "dvc pull failed: missing object"
    assert b.state == "failed" and b.error == "KeyError: 'x'"
    assert c.state == "cancelled"
    jobs.shutdown()


def test_a_cancel_that_comes_after_the_work_finished_leaves_it_done():
    jobs = JobManager(max_workers=1)

    def work(job: Job):
        jobs.cancel(job.id)  # the user's cancel lands after the last check: the work is done
        return {"pulled": True}

    job = jobs.submit(Job("pull", "g/p", None, "p"), work)
    wait_ended(job)
    assert job.state == "done" and job.result == {"pulled": True}
    jobs.shutdown()


def test_a_job_cancelled_before_its_work_set_a_state_ends_only_when_its_clean_up_did():
    """A worker took the job but the work has not said what it does yet (still "queued"):
    the cancel must not report "cancelled" while the work's clean-up still runs (a publish
    removing the ``.git`` its clone made, say)."""
    started, cancelled, cleaned = threading.Event(), threading.Event(), threading.Event()

    def work(job: Job):
        started.set()
        assert cancelled.wait(5)
        try:
            job.check_cancelled()
        finally:
            assert job.state == "queued"  # nobody said it ended while it cleans up
            cleaned.set()

    jobs = JobManager(max_workers=1)
    job = jobs.submit(Job("publish", "g/p", "v1", "p"), work)
    assert started.wait(5)
    assert jobs.cancel(job.id).state == "queued"
    cancelled.set()
    wait_ended(job)
    assert cleaned.is_set() and job.state == "cancelled"
    jobs.shutdown()
