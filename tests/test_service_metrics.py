"""The Prometheus text exposition written by hand: format details scrapers rely on."""

from __future__ import annotations

import threading

import pytest

from assistant.service.metrics import Counter, Histogram, Registry, ServiceMetrics, parse_text, rss_bytes


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    hist = Histogram("lat_seconds", "Latency.", ("stage",), buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 3.0):
        hist.observe(value, stage="asr")
    registry = Registry()
    registry.add(hist)
    text = registry.render()
    assert "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n" in text
    samples = parse_text(text)
    assert samples['lat_seconds_bucket{stage="asr",le="0.1"}'] == 1
    assert samples['lat_seconds_bucket{stage="asr",le="1"}'] == 3
    assert samples['lat_seconds_bucket{stage="asr",le="+Inf"}'] == 4
    assert samples['lat_seconds_count{stage="asr"}'] == 4
    assert samples['lat_seconds_sum{stage="asr"}'] == pytest.approx(4.05)


def test_counter_labels_are_escaped_and_checked() -> None:
    counter = Counter("things_total", "Things.", ("intent",))
    counter.inc(intent='say "hi"\\now\n')
    assert counter.lines() == ['things_total{intent="say \\"hi\\"\\\\now\\n"} 1']
    with pytest.raises(ValueError):
        counter.inc(room="kitchen")
    with pytest.raises(ValueError):
        counter.inc(-1, intent="x")


def test_unlabelled_counter_is_exported_at_zero() -> None:
    assert Counter("reloads_total", "Reloads.").lines() == ["reloads_total 0"]


def test_concurrent_updates_are_not_lost() -> None:
    counter = Counter("n_total", "N.", ("k",))

    def work() -> None:
        for _ in range(5000):
            counter.inc(k="a")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value(k="a") == 20000


def test_service_metrics_render_every_family() -> None:
    metrics = ServiceMetrics(lambda: 12.5, rss_bytes)
    metrics.observe_stage("tts", 0.2)
    metrics.reloads.inc(result="error")
    with pytest.raises(ValueError, match="unknown stage"):
        metrics.observe_stage("wake", 0.1)
    text = metrics.render()
    for family in ("assistant_stage_seconds", "assistant_intents_total", "assistant_no_match_total",
                   "assistant_handler_failures_total", "assistant_reloads_total", "assistant_uptime_seconds",
                   "assistant_resident_memory_bytes"):
        assert f"# TYPE {family} " in text
    samples = parse_text(text)
    assert samples["assistant_uptime_seconds"] == 12.5
    assert samples["assistant_resident_memory_bytes"] > 10e6
    assert samples['assistant_reloads_total{result="error"}'] == 1


def test_model_scheduler_waits_are_exported_by_work_priority_and_holder() -> None:
    from assistant.scheduler import ModelScheduler, Priority, Wait
    from assistant.service.health import ServiceState
    from assistant.service.loopmetrics import LoopMetrics

    metrics = ServiceMetrics(lambda: 1.0, rss_bytes)
    adapter = LoopMetrics(metrics, ServiceState())
    adapter.on_model_wait(Wait("asr", Priority.COMMAND, 0.3, "tts"))
    scheduler = ModelScheduler()
    scheduler.add_observer(adapter.on_model_wait)
    with scheduler.slot("tts", Priority.BACKGROUND):
        pass
    samples = parse_text(metrics.render())
    assert samples['assistant_model_wait_seconds_count{work="asr",priority="command",behind="tts"}'] == 1
    assert samples['assistant_model_wait_seconds_bucket{work="asr",priority="command",behind="tts",le="0.25"}'] == 0
    assert samples['assistant_model_wait_seconds_bucket{work="asr",priority="command",behind="tts",le="0.5"}'] == 1
    assert samples['assistant_model_wait_seconds_count{work="tts",priority="background",behind="none"}'] == 1
