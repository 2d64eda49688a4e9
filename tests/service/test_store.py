"""Both stores, one contract: idempotent submit, leases, attempts, retries, failures, reports
(the ``store`` fixture, tests/service/conftest.py, gives each test SQLite and a real Redis)."""

from __future__ import annotations

import time
from pathlib import Path

from scanner.service.events import PushEvent
from scanner.service.sqlite_store import SqliteStore
from scanner.service.store import JobResult, Store

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
E1 = PushEvent("127.0.0.1:5000", "demo/app", D1, "v1")


def result(findings: int = 1) -> JobResult:
    return JobResult(findings, True, {"findings": findings}, {"json": '{"ok": 1}', "table": "t"})


def test_submit_is_idempotent_by_digest(store: Store) -> None:
    job, created = store.submit(E1, "distribution")
    assert created and job.status == "queued"
    again, created = store.submit(PushEvent("127.0.0.1:5000", "other/repo", D1, "v9"), "harbor")
    assert not created and again.id == job.id  # the same digest pushed to another repo: same content
    store.start(job.id, "w1", 30)
    store.finish(job.id, result())
    assert store.submit(E1, "distribution")[1] is False  # done: a duplicate notification does not rescan
    other, created = store.submit(PushEvent("127.0.0.1:5000", "demo/app", D2, None), "distribution")
    assert created and other.id != job.id
    assert store.by_digest(D1) is not None and store.by_digest(D1).id == job.id  # type: ignore[union-attr]
    assert [j.id for j in store.recent(10)] == [other.id, job.id]
    assert [j.id for j in store.recent(10, "done")] == [job.id]
    assert store.counts() == {"queued": 1, "running": 0, "done": 1, "failed": 0}


def test_a_failed_digest_is_scanned_again_on_a_new_push(store: Store) -> None:
    job, _ = store.submit(E1, "distribution")
    store.fail(job.id, "boom")
    again, created = store.submit(E1, "distribution")
    assert created and again.id != job.id


def test_tag_only_events_dedupe_while_queued(store: Store) -> None:
    hub = PushEvent("docker.io", "team/app", None, "1.2")
    job, created = store.submit(hub, "dockerhub")
    assert created
    assert store.submit(hub, "dockerhub")[0].id == job.id
    store.start(job.id, "w", 30)
    store.set_digest(job.id, D2)
    store.finish(job.id, result())
    assert store.submit(hub, "dockerhub")[1] is True  # the tag may have moved since
    assert store.by_digest(D2).id == job.id  # type: ignore[union-attr]


def test_start_counts_attempts_and_respects_leases(store: Store) -> None:
    job, _ = store.submit(E1, "distribution")
    first = store.start(job.id, "w1", lease=30)
    assert first is not None and first.attempts == 1 and first.status == "running" and first.worker == "w1"
    assert store.start(job.id, "w2", lease=30) is None  # w1 holds a live lease
    assert 25 < store.lease_left(job.id) <= 30
    store.heartbeat(job.id, "w2", 30)  # not its job: no effect
    store.heartbeat(job.id, "w1", 0.2)  # w1 renews... then dies
    time.sleep(0.3)
    second = store.start(job.id, "w2", lease=30)  # the lease ran out: the job is taken over
    assert second is not None and second.attempts == 2 and second.worker == "w2"
    store.finish(job.id, result(3))
    assert store.start(job.id, "w3", 30) is None
    done = store.get(job.id)
    assert done is not None and done.status == "done" and done.findings == 3 and done.complete
    assert store.report(job.id, "json") == '{"ok": 1}' and store.report(job.id, "sarif") is None


def test_retry_and_fail(store: Store) -> None:
    job, _ = store.submit(E1, "harbor-adapter", auth="Basic cm9ib3Q6cHc=")
    store.start(job.id, "w", 30)
    store.retry(job.id, 60, "registry down")
    queued = store.get(job.id)
    assert queued is not None and queued.status == "queued" and queued.not_before > time.time() + 50
    assert queued.error == "registry down" and queued.auth == "Basic cm9ib3Q6cHc="
    store.start(job.id, "w", 30)
    store.fail(job.id, "gave up")
    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error == "gave up"
    assert failed.auth is None  # the robot credentials do not outlive the job
    assert "auth" not in failed.public()


def test_sqlite_claim_takes_due_jobs_and_expired_leases(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    assert store.claim("w", 30) is None
    job, _ = store.submit(E1, "distribution")
    store.retry(job.id, 0.3, "later")
    assert store.claim("w", 30) is None  # not due yet
    time.sleep(0.35)
    claimed = store.claim("w1", 1.5)  # long enough that w2's claim below comes within it on a slow disk
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1
    assert store.claim("w2", 30) is None
    time.sleep(1.6)  # w1 died: its lease runs out
    again = store.claim("w2", 30)
    assert again is not None and again.attempts == 2
    # a second connection (another worker process) sees the same data
    assert SqliteStore(tmp_path / "db.sqlite3").get(job.id).worker == "w2"  # type: ignore[union-attr]


def test_defer_requeues_without_counting_the_execution(store: Store) -> None:
    job, _ = store.submit(E1, "distribution")
    started = store.start(job.id, "w", 30)
    assert started is not None and started.attempts == 1
    store.defer(job.id, 60)
    waiting = store.get(job.id)
    assert waiting is not None and waiting.status == "queued" and waiting.attempts == 0
    assert waiting.not_before > time.time() + 50 and waiting.worker is None
    assert store.counts()["queued"] == 1 and store.counts()["running"] == 0


def test_stale_reports_and_rescans(store: Store) -> None:
    """A report made under another rule set is stale while it is the newest of its image; a rescan
    is a new job for the same digest that points back at it."""
    old, _ = store.submit(E1, "distribution")
    store.start(old.id, "w", 30)
    store.finish(old.id, JobResult(1, True, {"findings": 1}, {"json": "{}"}, ruleset="rules-a", version="1"))
    other, _ = store.submit(PushEvent("127.0.0.1:5000", "demo/app", D2, None), "distribution")
    store.start(other.id, "w", 30)
    store.finish(other.id, JobResult(0, True, {"findings": 0}, {"json": "{}"}, ruleset="rules-b", version="1"))
    assert [j.id for j in store.stale("rules-b", 10)] == [old.id] and store.count_stale("rules-b") == 1
    assert [j.id for j in store.stale("rules-c", 10)] == [other.id, old.id]  # newest first
    assert store.count_stale("rules-a") == 1 and [j.id for j in store.stale("rules-c", 1)] == [other.id]
    done = store.get(old.id)
    assert done is not None and done.ruleset == "rules-a" and done.version == "1"
    new = store.rescan(done)
    assert new is not None and new.status == "queued" and new.previous == old.id and new.source == "rescan"
    assert new.digest == D1 and new.ref == old.ref and new.id != old.id
    assert store.count_stale("rules-b") == 0  # the newest job of the image is the rescan
    assert store.rescan(done) is None  # not twice
    assert store.by_digest(D1).id == new.id  # type: ignore[union-attr]
    assert store.submit(E1, "distribution") == (store.get(new.id), False)  # a push meanwhile: the same work
