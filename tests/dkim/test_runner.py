"""The verification runner: jobs run in a worker process, answers come back in order,
and a job is answered even when the worker dies, cannot be started or is stuck
(postel.dkim.runner, postel.dkim.verify_worker)."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import pickle
import signal
import sys
import time
from pathlib import Path

import pytest

from postel.dkim import runner as runner_module
from postel.dkim.framing import FRAME_HEADER, job, read_frame
from postel.dkim.runner import VerifyRunner, WorkerLost
from postel.dkim.verify_worker import serve


def _pid_of(_argument: bytes) -> int:
    return os.getpid()


class _LocalOnly:
    """Pickles by reference to a module the worker process cannot import."""

    def __call__(self, _argument: bytes) -> int:
        return os.getpid()


_LocalOnly.__module__ = "tests_only_in_this_process"
sys.modules["tests_only_in_this_process"] = sys.modules[__name__]
sys.modules[__name__]._LocalOnly = _LocalOnly


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_jobs_run_in_another_process_and_answer_in_order() -> None:
    runner = VerifyRunner()
    try:
        pids = await asyncio.gather(*(runner.run(os.getpid) for _ in range(20)))
        assert set(pids) == {runner.worker_pid}
        assert runner.worker_pid != os.getpid()
        values = await asyncio.gather(*(runner.run(functools.partial(abs, -n)) for n in range(50)))
        assert values == list(range(50))
    finally:
        await runner.aclose()


async def test_the_exception_of_a_job_is_raised_by_run() -> None:
    runner = VerifyRunner()
    try:
        with pytest.raises(ValueError, match="invalid literal"):
            await runner.run(functools.partial(int, "not a number"))
        assert await runner.run(functools.partial(int, "7")) == 7  # the worker goes on
    finally:
        await runner.aclose()


async def test_a_job_that_does_not_pickle_runs_in_a_thread() -> None:
    runner = VerifyRunner()
    try:
        here = os.getpid()
        assert await runner.run(lambda: os.getpid()) == here
    finally:
        await runner.aclose()


async def test_a_killed_worker_is_started_again_and_its_jobs_go_to_the_new_one() -> None:
    runner = VerifyRunner()
    try:
        first = await runner.run(os.getpid)
        slow = [
            asyncio.create_task(runner.run(functools.partial(time.sleep, 0.3))) for _ in range(3)
        ]
        await asyncio.sleep(0.1)
        os.kill(first, signal.SIGKILL)
        assert await asyncio.wait_for(asyncio.gather(*slow), 10) == [None, None, None]
        second = await runner.run(os.getpid)
        assert second not in (first, os.getpid())
    finally:
        await runner.aclose()


async def test_a_job_that_ends_two_workers_fails_and_never_runs_here() -> None:
    runner = VerifyRunner()
    try:
        first = await runner.run(os.getpid)
        with pytest.raises(WorkerLost):
            await asyncio.wait_for(runner.run(functools.partial(os._exit, 3)), 20)
        assert await runner.run(os.getpid) not in (first, os.getpid())  # still served
    finally:
        await runner.aclose()


async def test_a_stuck_job_times_out_and_its_worker_is_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "VERIFY_JOB_TIMEOUT_S", 0.5)
    runner = VerifyRunner()
    try:
        pid = await runner.run(os.getpid)
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await runner.run(functools.partial(time.sleep, 30))
        assert time.monotonic() - began < 5
        assert await _gone(pid)
        assert await runner.run(functools.partial(abs, -3)) == 3  # a new worker
    finally:
        await runner.aclose()


async def test_without_a_worker_that_lives_jobs_end_up_in_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "_WORKER_MODULE", "postel.no_such_module")
    runner = VerifyRunner()
    try:
        outcomes: list[object] = []
        for _ in range(runner_module.WORKER_RESTARTS_MAX + 2):
            try:
                outcomes.append(await runner.run(os.getpid))
            except WorkerLost:  # each of its two workers died at once
                outcomes.append("lost")
        # Once the restarts are spent the jobs run here (the only way left to answer).
        assert outcomes[-2:] == [os.getpid(), os.getpid()]
        assert set(outcomes) <= {"lost", os.getpid()}
        assert runner.worker_pid is None
    finally:
        await runner.aclose()


async def test_close_ends_the_worker_and_later_jobs_run_in_threads() -> None:
    runner = VerifyRunner()
    pid = await runner.run(os.getpid)
    await runner.aclose()
    assert await _gone(pid)
    assert await runner.run(os.getpid) == os.getpid()
    await runner.aclose()  # idempotent


async def test_prestart_starts_the_worker_before_the_first_job() -> None:
    runner = VerifyRunner()
    try:
        runner.prestart()
        deadline = time.monotonic() + 10
        while runner.worker_pid is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        pid = runner.worker_pid
        assert pid is not None
        assert await runner.run(os.getpid) == pid
    finally:
        await runner.aclose()


# --- The worker's side, bytes in and bytes out ----------------------------------------


def _jobs(*jobs: tuple[int, object]) -> io.BytesIO:
    return io.BytesIO(b"".join(job(job_id, pickle.dumps(f)) for job_id, f in jobs))


def _answers(data: bytes) -> list[object]:
    stream = io.BytesIO(data)
    out = []
    while (payload := read_frame(stream)) is not None:
        out.append(pickle.loads(payload))
    return out


def test_the_worker_answers_each_job_with_its_id() -> None:
    sink = io.BytesIO()
    serve(_jobs((1, functools.partial(abs, -5)), (2, functools.partial(int, "x"))), sink)
    (one, two) = _answers(sink.getvalue())
    assert one == (1, True, 5)
    assert two[:2] == (2, False) and isinstance(two[2], ValueError)


def test_a_job_the_worker_cannot_load_is_answered_as_not_run() -> None:
    sink = io.BytesIO()
    source = io.BytesIO(job(7, b"not a pickle") + job(8, pickle.dumps(functools.partial(abs, -1))))
    serve(source, sink)
    (seven, eight) = _answers(sink.getvalue())
    assert seven[:2] == (7, None)
    assert eight == (8, True, 1)


async def test_a_job_only_this_process_can_load_runs_here() -> None:
    runner = VerifyRunner()
    try:
        assert await runner.run(os.getpid) != os.getpid()
        local = functools.partial(_LocalOnly(), b"x")  # a class the worker cannot import
        assert await runner.run(local) == os.getpid()
        assert await runner.run(os.getpid) not in (None, os.getpid())  # the worker lives on
    finally:
        await runner.aclose()


@pytest.mark.parametrize(
    "stream",
    [b"", b"\x00\x00", b"\x00\x00\x00\x09abc", b"\xff\xff\xff\xff" + b"x" * 10],
    ids=["empty", "short-header", "short-payload", "over-frame-max"],
)
def test_the_worker_stops_at_the_end_or_at_a_broken_frame(stream: bytes) -> None:
    sink = io.BytesIO()
    serve(io.BytesIO(stream), sink)
    assert sink.getvalue() == b""
    assert FRAME_HEADER == 4


async def test_a_job_larger_than_a_frame_runs_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "FRAME_MAX", 1000)
    runner = VerifyRunner()
    try:
        assert await runner.run(functools.partial(os.getpid)) != os.getpid()
        big = functools.partial(max, b"x" * 2000, b"y")  # pickles to more than 1000 octets
        assert await runner.run(big) == b"y"
        assert await runner.run(functools.partial(_pid_of, b"x" * 2000)) == os.getpid()
        assert await runner.run(functools.partial(os.getpid)) not in (None, os.getpid())
    finally:
        await runner.aclose()


async def test_a_stuck_verification_is_a_temperror_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify_message turns the runner's TimeoutError into one temperror result."""
    from postel.dkim import verify as verify_module
    from postel.dkim.verify import DkimStatus, verify_message

    class _Stuck:
        async def run(self, function: object) -> object:
            raise TimeoutError

    class _Keys:
        async def txt(self, name: str) -> tuple[bytes, ...]:
            return (b"v=DKIM1; k=rsa; p=AAAA",)

    message = (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n"
        b"From: a@example.test\r\n\r\nbody\r\n"
    )
    assert verify_module.VerifyRunner is VerifyRunner
    (result,) = await verify_message(message, _Keys(), runner=_Stuck())  # type: ignore[arg-type]
    assert result.result is DkimStatus.TEMPERROR and "in time" in result.reason


@pytest.mark.parametrize("kind", ["DkimResult", "KeyAnswer"])
def test_what_crosses_the_pipe_keeps_every_field(kind: str) -> None:
    """Their pickles are constructor calls: a field added later must be added there too."""
    import dataclasses

    from postel.dkim import verify as verify_module

    cls = getattr(verify_module, kind)
    values = {
        f.name: (
            verify_module.DkimStatus.TEMPERROR
            if "status" in f.name or f.name == "result"
            else f"v{i}"
        )
        for i, f in enumerate(dataclasses.fields(cls))
    }
    instance = cls(**values)
    assert pickle.loads(pickle.dumps(instance, protocol=pickle.HIGHEST_PROTOCOL)) == instance
