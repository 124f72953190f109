"""Running the assistant as a long-lived service: one process with the listen loop and the
HTTP API over the same warm models, supervised by systemd (notify, watchdog, reload).

Modules: `notify` (sd_notify), `metrics` (Prometheus text), `reload` (commands.yaml hot reload),
`api` + `openapi` (HTTP), `health` (state for /v1/health), `app` (the `serve` assembly),
`units` (systemd unit files), `doctor` (environment checks). Imports stay light here: torch and
the models load only inside `app`.
"""
