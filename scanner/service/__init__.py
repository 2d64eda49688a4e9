"""The webhook scanning service: payload -> job -> the same ``scan_image`` as the CLI -> stored report.

config (TOML) · events (webhook payloads) · store (jobs, SQLite) · redis_store (Redis + Dramatiq) ·
jobs (one scan, retry policy) · workers (embedded pool, Dramatiq actor) · app (HTTP) · harbor
(scanner adapter) · notify (outbound alert) · server / commands (wiring, CLI).
"""
