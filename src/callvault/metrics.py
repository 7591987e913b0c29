"""Prometheus text exposition of the recorder's counters (SPEC section 9)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class OutboxMetrics:
    """The S3 outbox (``storage/outbox.py``): blobs waiting for upload, and how uploads go."""

    files: int = 0
    bytes: int = 0
    oldest_since: float | None = None  # wall-clock time the oldest waiting blob was queued
    uploads: int = 0
    failures: int = 0
    refused: int = 0  # waiting blobs whose last upload the store refused (S3 up, this one not)

    def rows(self) -> list[tuple[str, str, str, float]]:
        age = 0.0 if self.oldest_since is None else max(0.0, time.time() - self.oldest_since)
        return [
            ("callvault_blob_outbox_files", "gauge", "blobs waiting for upload", self.files),
            ("callvault_blob_outbox_bytes", "gauge", "bytes waiting for upload", self.bytes),
            (
                "callvault_blob_outbox_oldest_age_seconds",
                "gauge",
                "how long the oldest waiting blob has waited",
                round(age, 1),
            ),
            ("callvault_blob_uploads_total", "counter", "blobs uploaded", self.uploads),
            (
                "callvault_blob_upload_failures_total",
                "counter",
                "failed upload attempts (retried)",
                self.failures,
            ),
            (
                "callvault_blob_outbox_refused_files",
                "gauge",
                "waiting blobs the store refused (each retried on its own backoff)",
                self.refused,
            ),
        ]


@dataclass
class Metrics:
    calls_started: int = 0
    calls_rejected: int = 0
    calls_ended: int = 0
    recordings_stored: int = 0
    calls_not_recorded: int = 0
    finish_failures: int = 0
    # packets and bytes of calls that have ended; live calls are added at scrape time
    rtp_packets_done: int = 0
    rtp_bytes_done: int = 0
    rtp_malformed_done: int = 0
    rtp_foreign_done: int = 0  # from another source than the stream latched to
    rtp_unauthenticated_done: int = 0  # SRTP packets failing authentication
    calls_declined: int = 0  # nobody could be recorded: streams answered with port 0
    # SIP requests refused by the recording-source check (callvault.sources)
    sip_requests_refused_unknown_source: int = 0
    sip_requests_refused_limit: int = 0
    live: Callable[[], dict[str, int]] = field(default=lambda: {})
    outbox: OutboxMetrics = field(default_factory=OutboxMetrics)  # blob_store = "s3" only

    def render(self, jobs: Mapping[str, int] | None = None) -> str:
        """The exposition; ``jobs``: background jobs per state (``jobs.queue.state_counts``)."""
        live = self.live()
        rows: list[tuple[str, str, str, float]] = [
            ("callvault_active_calls", "gauge", "calls being recorded now", live.get("calls", 0)),
            (
                "callvault_calls_started_total",
                "counter",
                "SIPREC sessions accepted",
                self.calls_started,
            ),
            (
                "callvault_calls_rejected_total",
                "counter",
                "SIPREC INVITEs refused",
                self.calls_rejected,
            ),
            ("callvault_calls_ended_total", "counter", "sessions ended", self.calls_ended),
            (
                "callvault_recordings_stored_total",
                "counter",
                "recordings stored",
                self.recordings_stored,
            ),
            (
                "callvault_calls_not_recorded_total",
                "counter",
                "calls dropped by matching",
                self.calls_not_recorded,
            ),
            (
                "callvault_finish_failures_total",
                "counter",
                "finishing errors",
                self.finish_failures,
            ),
            (
                "callvault_rtp_packets_received_total",
                "counter",
                "RTP packets captured",
                self.rtp_packets_done + live.get("packets", 0),
            ),
            (
                "callvault_rtp_bytes_received_total",
                "counter",
                "RTP bytes captured",
                self.rtp_bytes_done + live.get("bytes", 0),
            ),
            (
                "callvault_rtp_malformed_total",
                "counter",
                "datagrams that were not RTP",
                self.rtp_malformed_done + live.get("malformed", 0),
            ),
            (
                "callvault_rtp_foreign_total",
                "counter",
                "RTP packets dropped: not from the stream's sender (latching)",
                self.rtp_foreign_done + live.get("foreign", 0),
            ),
            (
                "callvault_srtp_unauthenticated_total",
                "counter",
                "SRTP packets dropped: authentication failed",
                self.rtp_unauthenticated_done + live.get("unauthenticated", 0),
            ),
            (
                "callvault_calls_declined_total",
                "counter",
                "calls nobody could be recorded in: media declined",
                self.calls_declined,
            ),
            (
                "callvault_sip_requests_refused_unknown_source_total",
                "counter",
                "SIP requests from no registered recording source",
                self.sip_requests_refused_unknown_source,
            ),
            (
                "callvault_sip_requests_refused_limit_total",
                "counter",
                "SIP requests refused by a recording source's limits",
                self.sip_requests_refused_limit,
            ),
            (
                "callvault_spool_pending",
                "gauge",
                "spools waiting to be finished",
                live.get("pending", 0),
            ),
            *self.outbox.rows(),
        ]
        out = []
        for name, kind, text, value in rows:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        if jobs is not None:  # one gauge, labelled: alert on failed > 0 or queued growing
            out += [
                "# HELP callvault_jobs background jobs by state (finished ones are not counted)",
                "# TYPE callvault_jobs gauge",
                *(f'callvault_jobs{{state="{state}"}} {count}' for state, count in jobs.items()),
            ]
        return "\n".join(out) + "\n"
