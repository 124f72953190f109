"""The model scheduler with fake jobs: the order in which queued work gets the slot, background
work yielding between its chunks and pausing, re-entrance, and the measured waits (exact, with
an injected clock)."""

from __future__ import annotations

import threading
import time

import pytest

from assistant.scheduler import ModelScheduler, Priority, Wait, current_priority, work_priority

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


class Holder:
    """A thread holding the slot until released (a model step in progress)."""

    def __init__(self, scheduler: ModelScheduler, work: str = "tts", priority: Priority = Priority.BACKGROUND) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

        def run() -> None:
            with scheduler.slot(work, priority):
                self.entered.set()
                self.release.wait(10)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.entered.wait(5)


def job(scheduler: ModelScheduler, order: list[str], name: str, work: str, priority: Priority) -> threading.Thread:
    def run() -> None:
        with scheduler.slot(work, priority):
            order.append(name)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def queue_jobs(scheduler: ModelScheduler, order: list[str], jobs: list[tuple[str, str, Priority]]) -> list[threading.Thread]:
    threads = []
    for count, (name, work, priority) in enumerate(jobs, start=1):
        threads.append(job(scheduler, order, name, work, priority))
        wait_until(lambda: len(scheduler.snapshot()["waiting"]) == count)  # queued in this order
    return threads


def test_freed_slot_goes_to_the_most_urgent_waiter_then_first_come() -> None:
    scheduler = ModelScheduler()
    holder = Holder(scheduler)
    order: list[str] = []
    threads = queue_jobs(scheduler, order, [
        ("prerender-1", "tts", Priority.BACKGROUND),
        ("api", "asr", Priority.API),
        ("prerender-2", "tts", Priority.BACKGROUND),
        ("live", "tts", Priority.LIVE),
        ("command", "asr", Priority.COMMAND),
        ("live-2", "tts", Priority.LIVE),
    ])
    assert scheduler.snapshot()["waiting"][0] == ("asr", "command")
    holder.release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["command", "live", "live-2", "api", "prerender-1", "prerender-2"]


def test_background_work_yields_to_a_command_between_chunks() -> None:
    """A pre-render of five chunks; a command arriving during chunk 2 runs before chunk 3."""
    scheduler = ModelScheduler()
    order: list[str] = []
    in_chunk = [threading.Event() for _ in range(5)]
    go_on = [threading.Event() for _ in range(5)]

    def prerender() -> None:
        with work_priority(Priority.BACKGROUND):
            for index in range(5):
                with scheduler.slot("tts", Priority.LIVE):  # the engine's default, overridden
                    order.append(f"chunk-{index}")
                    in_chunk[index].set()
                    go_on[index].wait(5)

    background = threading.Thread(target=prerender, daemon=True)
    background.start()
    for index in (0, 1):
        assert in_chunk[index].wait(5)
        if index == 0:
            go_on[0].set()
    command = job(scheduler, order, "command", "asr", Priority.COMMAND)
    wait_until(lambda: scheduler.snapshot()["waiting"] == [("asr", "command")])
    for event in go_on:
        event.set()
    command.join(5)
    background.join(5)
    assert order == ["chunk-0", "chunk-1", "command", "chunk-2", "chunk-3", "chunk-4"]


def test_background_work_pauses_while_a_command_is_handled() -> None:
    scheduler = ModelScheduler()
    order: list[str] = []
    pause = scheduler.pause_background()
    pause.__enter__()
    background = job(scheduler, order, "prerender", "tts", Priority.BACKGROUND)
    wait_until(lambda: scheduler.snapshot()["waiting"] == [("tts", "background")])
    time.sleep(0.05)
    assert order == []  # the slot is free, yet background work waits
    job(scheduler, order, "command", "asr", Priority.COMMAND).join(5)
    api = job(scheduler, order, "api", "tts", Priority.API)
    api.join(5)
    assert order == ["command", "api"]
    pause.__exit__(None, None, None)
    background.join(5)
    assert order == ["command", "api", "prerender"]


def test_pauses_overlap_from_several_threads() -> None:
    scheduler = ModelScheduler()
    order: list[str] = []
    first, second = scheduler.pause_background(), scheduler.pause_background()
    first.__enter__()
    second.__enter__()
    background = job(scheduler, order, "prerender", "tts", Priority.BACKGROUND)
    first.__exit__(None, None, None)
    time.sleep(0.05)
    assert order == [] and scheduler.snapshot()["paused"] == 1
    second.__exit__(None, None, None)
    background.join(5)
    assert order == ["prerender"]


def test_the_slot_is_reentrant_within_a_thread_and_exclusive_across_threads() -> None:
    scheduler = ModelScheduler()
    order: list[str] = []
    with scheduler.slot("tts", Priority.LIVE):
        with scheduler.slot("tts", Priority.LIVE):  # an engine step inside an engine call
            assert scheduler.held_here()
        other = job(scheduler, order, "other", "asr", Priority.COMMAND)
        wait_until(lambda: scheduler.snapshot()["waiting"] == [("asr", "command")])
        assert order == []  # still held after the inner exit
    other.join(5)
    assert order == ["other"] and not scheduler.held_here()


def test_an_exception_inside_the_slot_frees_it() -> None:
    scheduler = ModelScheduler()
    with pytest.raises(ValueError):
        with scheduler.slot("asr", Priority.COMMAND):
            raise ValueError("model failed")
    order: list[str] = []
    job(scheduler, order, "next", "tts", Priority.LIVE).join(5)
    assert order == ["next"] and scheduler.snapshot()["holder"] is None


def test_releasing_from_another_thread_is_refused() -> None:
    scheduler = ModelScheduler()
    with pytest.raises(RuntimeError, match="does not hold"):
        scheduler._release()


def test_waits_are_measured_with_what_held_the_slot() -> None:
    clock = FakeClock()
    scheduler = ModelScheduler(clock=clock)
    waits: list[Wait] = []
    remove = scheduler.add_observer(waits.append)
    holder = Holder(scheduler, "tts", Priority.LIVE)
    command = job(scheduler, [], "command", "asr", Priority.COMMAND)
    wait_until(lambda: scheduler.snapshot()["waiting"] == [("asr", "command")])
    clock.now += 1.25  # the TTS step takes 1.25 s more
    holder.release.set()
    command.join(5)
    assert waits[0] == Wait("tts", Priority.LIVE, 0.0, "none")
    assert waits[1] == Wait("asr", Priority.COMMAND, 1.25, "tts")
    with scheduler.pause_background():
        paused = job(scheduler, [], "bg", "tts", Priority.BACKGROUND)
        wait_until(lambda: len(scheduler.snapshot()["waiting"]) == 1)
        clock.now += 0.5
    paused.join(5)
    assert waits[2] == Wait("tts", Priority.BACKGROUND, 0.5, "paused")
    remove()
    with scheduler.slot("asr", Priority.COMMAND):
        pass
    assert len(waits) == 3


def test_a_failing_observer_does_not_stop_model_work() -> None:
    scheduler = ModelScheduler()

    def broken(wait: Wait) -> None:
        raise RuntimeError("metrics bug")

    scheduler.add_observer(broken)
    with scheduler.slot("asr", Priority.COMMAND):
        assert scheduler.held_here()


def test_work_priority_overrides_the_default_in_this_thread_only() -> None:
    assert current_priority(Priority.COMMAND) is Priority.COMMAND
    seen: list[Priority] = []
    with work_priority(Priority.BACKGROUND):
        assert current_priority(Priority.COMMAND) is Priority.BACKGROUND
        thread = threading.Thread(target=lambda: seen.append(current_priority(Priority.LIVE)))
        thread.start()
        thread.join()
    assert seen == [Priority.LIVE]  # a new thread starts without the caller's priority
    assert current_priority(Priority.API) is Priority.API
