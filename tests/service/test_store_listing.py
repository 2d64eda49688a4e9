"""Both stores, one contract: cursor pages, deletion and retention (SQLite and a real Redis)."""

from __future__ import annotations

import threading

import pytest

from scanner.service import store as store_module
from scanner.service.events import PushEvent
from scanner.service.retention import RetentionPolicy, prunable, prune
from scanner.service.sqlite_store import SqliteStore
from scanner.service.store import Cursor, CursorError, Job, JobResult, Store

REG = "127.0.0.1:5000"
DAY = 86400.0
NOW = 1_750_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The time new jobs are created at (store.new_job, store.rescan_of)."""
    fake = Clock(NOW)
    monkeypatch.setattr(store_module, "time", fake)
    return fake


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def twin(store: Store) -> Store:
    """Another connection to the same data, as another process has."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    from scanner.service.redis_store import RedisStore

    assert isinstance(store, RedisStore)
    return RedisStore(store.url)


def add(store: Store, n: int, repo: str = "team/app", tag: str | None = None, status: str = "done") -> Job:
    job, created = store.submit(PushEvent(REG, repo, digest(n), tag), "distribution")
    assert created
    if status != "queued":
        store.start(job.id, "w", 30)
    if status == "done":
        store.finish(job.id, JobResult(0, True, {}, {"json": "{}"}, ruleset="rules-old", version="1"))
    elif status == "failed":
        store.fail(job.id, "boom")
    got = store.get(job.id)
    assert got is not None
    return got


def walk_pages(store: Store, limit: int, **filters: str) -> list[Job]:
    seen: list[Job] = []
    cursor: Cursor | None = None
    while True:
        page = store.page(limit, cursor, filters.get("status"), filters.get("repository"))
        assert len(page.jobs) <= limit
        seen += page.jobs
        if page.next is None:
            return seen
        cursor = Cursor.decode(page.next.encode())  # through its opaque form, as the API hands it out


def test_pages_walk_every_job_once_in_order_with_ties(store: Store, clock: Clock) -> None:
    jobs = []
    for n in range(23):
        clock.now = NOW + n // 4  # four jobs at a time share their created time
        jobs.append(add(store, n, repo=f"team/r{n % 3}", status=("done", "failed", "queued")[n % 3]))
    everything = sorted(jobs, key=lambda j: (j.created, j.id), reverse=True)
    for limit in (1, 4, 5, 50):
        assert [j.id for j in walk_pages(store, limit)] == [j.id for j in everything]
    assert [j.id for j in walk_pages(store, 3, status="failed")] == [j.id for j in everything if j.status == "failed"]
    in_r1 = [j.id for j in everything if j.repository == "team/r1"]
    assert [j.id for j in walk_pages(store, 2, repository="team/r1")] == in_r1
    both = [j.id for j in everything if j.repository == "team/r0" and j.status == "done"]
    assert [j.id for j in walk_pages(store, 2, repository="team/r0", status="done")] == both
    assert store.page(10, None, "running").jobs == [] and store.page(10, None, "running").next is None
    assert store.repositories() == ["team/r0", "team/r1", "team/r2"]


def test_a_walk_sees_each_job_once_while_another_process_inserts(store: Store) -> None:
    before = {add(store, n, status="queued").id for n in range(60)}
    other, stop, inserted = twin(store), threading.Event(), []

    def insert() -> None:
        n = 1000
        while not stop.is_set() and n < 1300:
            inserted.append(other.submit(PushEvent(REG, "team/app", digest(n), None), "distribution")[0].id)
            n += 1

    thread = threading.Thread(target=insert)
    thread.start()
    try:
        seen = []
        cursor: Cursor | None = None
        while True:
            page = store.page(7, cursor)
            seen += [j.id for j in page.jobs]
            if page.next is None:
                break
            cursor = page.next
    finally:
        stop.set()
        thread.join()
    assert inserted, "the other process inserted nothing during the walk"
    assert len(seen) == len(set(seen))  # never twice
    assert before <= set(seen)  # every job that existed when the walk began
    assert set(seen) <= before | set(inserted)


def test_a_cursor_is_opaque_and_checked() -> None:
    cursor = Cursor(NOW + 0.123456, "f" * 32)
    assert Cursor.decode(cursor.encode()) == cursor and "f" * 32 not in cursor.encode()
    for bad in ("", "not-base64!", "W10", Cursor(1.0, "x" * 65).encode()):
        with pytest.raises(CursorError):
            Cursor.decode(bad)


def test_delete_removes_ended_jobs_their_reports_and_index_entries(store: Store) -> None:
    done, failed = add(store, 1), add(store, 2, repo="team/gone", status="failed")
    queued = add(store, 3, status="queued")
    assert store.count_stale("rules-new") == 1
    assert store.delete([done.id, failed.id, queued.id, "no-such-job"]) == 2  # a queued job is never deleted
    assert store.get(done.id) is None and store.report(done.id, "json") is None
    assert store.by_digest(digest(1)) is None and store.get(queued.id) is not None
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}
    assert [j.id for j in store.walk()] == [queued.id] and store.page(5, None, "done").jobs == []
    assert store.repositories() == ["team/app"] and store.count_stale("rules-new") == 0
    again, created = store.submit(PushEvent(REG, "team/app", digest(1), None), "distribution")
    assert created and again.id != done.id  # the image is scanned again on its next push


def test_retention_keeps_the_newest_report_of_each_tag(store: Store, clock: Clock) -> None:
    def at(days_ago: float, *args: object, **kwargs: object) -> Job:
        clock.now = NOW - days_ago * DAY
        return add(store, *args, **kwargs)  # type: ignore[arg-type]

    j4 = at(200, 4, tag="2")  # the only report of tag 2: kept at any age
    j1 = at(100, 1, tag="1")
    j2 = at(50, 2, tag="1")  # a queued rescan will replace it: kept while it waits
    j3 = at(10, 3, tag="1")  # the newest report of tag 1
    j5 = at(5, 5)  # pushed by digest, no tag
    j6 = at(1, 6, tag="3", status="failed")  # no report
    j7 = at(0.5, 7, tag="1", status="queued")
    clock.now = NOW
    j9 = store.rescan(j2)
    assert j9 is not None
    o1, o2 = at(300, 11, repo="team/other", tag="1"), at(299, 12, repo="team/other", tag="1")
    clock.now = NOW
    assert store.count_stale("rules-new") == 6  # j1, j3, j4, j5, o1, o2 (j2 has a rescan)
    assert prune(store, RetentionPolicy(), NOW) == 0  # no policy: nothing goes
    assert prune(store, RetentionPolicy(keep_per_repository=3), NOW) == 2
    assert store.get(j5.id) is None and store.get(j1.id) is None  # past the 3 newest of team/app
    assert store.report(j1.id, "json") is None
    assert prune(store, RetentionPolicy(max_age_days=30), NOW) == 1
    assert store.get(o1.id) is None  # 300 days old; o2 is the newest report of team/other:1
    kept = {j.id for j in store.walk()}
    assert kept == {j9.id, j7.id, j6.id, j3.id, j2.id, j4.id, o2.id}
    assert store.count_stale("rules-new") == len(store.stale("rules-new", 100)) == 3  # j3, j4, o2
    assert store.counts() == {"queued": 2, "running": 0, "done": 4, "failed": 1}
    assert prune(store, RetentionPolicy(max_age_days=0.1, keep_per_repository=1), NOW) == 1  # j6
    assert {j.id for j in store.walk()} == kept - {j6.id}


def test_prunable_is_one_pass_newest_first() -> None:
    def job(i: int, tag: str | None, status: str = "done", previous: str | None = None) -> Job:
        return Job(str(i), "r", REG, "a", None, tag, "api", status, created=NOW - i, previous=previous)

    history = [job(1, "x", "queued", previous="4"), job(2, "x"), job(3, None), job(4, "x"), job(5, "y", "failed")]
    assert list(prunable(history, RetentionPolicy(keep_per_repository=1), NOW)) == ["3", "5"]
    assert list(prunable(history, RetentionPolicy(max_age_days=1), NOW)) == []


def test_redis_counts_stale_reports_from_its_index(shared_redis: str) -> None:
    """Counting stale reports reads no job (a few ZCARDs), and a store written before the indexes
    is indexed when it is opened."""
    import redis

    from scanner.service.redis_store import P, RedisStore

    redis.Redis.from_url(shared_redis).flushdb()
    store = RedisStore(shared_redis)
    jobs = [add(store, n, repo=f"team/r{n % 2}", tag="1") for n in range(30)]
    store.r.config_resetstat()
    assert store.count_stale("rules-new") == 30 and store.count_stale("rules-old") == 0
    stats = store.r.info("commandstats")
    assert {k for k in stats if not k.startswith("cmdstat_config")} == {"cmdstat_smembers", "cmdstat_zcard"}, stats
    for key in store.r.scan_iter(f"{P}*"):  # as a store of the previous release left it
        if not key.decode().startswith((f"{P}job:", f"{P}digest:", f"{P}report:", f"{P}counts", f"{P}jobs")):
            store.r.delete(key)
    reopened = RedisStore(store.url)
    assert reopened.count_stale("rules-new") == 30 and reopened.repositories() == ["team/r0", "team/r1"]
    in_r1 = [j.id for j in reversed(jobs) if j.repository == "team/r1"]
    assert [j.id for j in reopened.walk(status="done", repository="team/r1")] == in_r1
