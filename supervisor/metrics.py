"""Prometheus metrics of one service process, in its own registry (no global state)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from capture.types import HubStats


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The check stream as `supervisor.checks.queue.CheckQueue.stats` reads it."""

    length: int  # jobs queued or in flight (acknowledged ones are deleted)
    pending: int  # delivered to a worker, not yet acknowledged
    oldest_age_s: float  # age of the oldest job still in the stream: the lag
    workers_alive: int
    dead_letters: int


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.checks = Counter(
            "supervisor_checks",
            "Checks decided, by kind and verdict.",
            ["kind", "verdict"],
            registry=r,
        )
        self.deferred = Counter(
            "supervisor_checks_deferred", "Checks deferred, by reason.", ["reason"], registry=r
        )
        self.latency = Histogram(
            "supervisor_check_latency_seconds",
            "From a check's job entering the queue to its result reaching the session.",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
            registry=r,
        )
        self.queue_length = Gauge(
            "supervisor_queue_length", "Check jobs queued or in flight.", registry=r
        )
        self.queue_pending = Gauge(
            "supervisor_queue_pending",
            "Check jobs delivered to a worker, not yet acknowledged.",
            registry=r,
        )
        self.queue_lag = Gauge(
            "supervisor_queue_lag_seconds", "Age of the oldest check job in the queue.", registry=r
        )
        self.dead_letters = Gauge(
            "supervisor_queue_dead_letters", "Jobs in the dead-letter stream.", registry=r
        )
        self.workers = Gauge(
            "supervisor_workers_alive", "Workers with a fresh heartbeat.", registry=r
        )
        self.frames_received = Gauge(
            "supervisor_frames_received", "Video frames received by this process.", registry=r
        )
        self.frames_dropped = Gauge(
            "supervisor_frames_dropped",
            "Video frames replaced by a newer one before anybody sampled them.",
            registry=r,
        )
        self.peers = Gauge(
            "supervisor_peers_connected", "WebRTC peer connections connected.", registry=r
        )
        self.chain_breaks = Counter(
            "supervisor_chain_breaks",
            "Chains found broken (the integrity alarm), by what found them.",
            ["found_by"],
            registry=r,
        )
        self.live_sessions = Gauge(
            "supervisor_live_sessions", "Sessions supervised live by this process.", registry=r
        )

    def render(self, queue: QueueStats | None, hub: HubStats | None, live: int) -> bytes:
        if queue is not None:
            self.queue_length.set(queue.length)
            self.queue_pending.set(queue.pending)
            self.queue_lag.set(queue.oldest_age_s)
            self.dead_letters.set(queue.dead_letters)
            self.workers.set(queue.workers_alive)
        if hub is not None:
            self.frames_received.set(hub.frames_received)
            self.frames_dropped.set(hub.frames_dropped)
            self.peers.set(hub.peers_connected)
        self.live_sessions.set(live)
        return generate_latest(self.registry)
