"""Celery settings for facepipe's workers and dispatcher, read from the environment.

Every value a deployment may change comes from a ``FACEPIPE_*`` variable (documented
in the README's "Configuration" table); the rest are the guarantees the pipeline
relies on and should not be changed.
"""

import os

broker_url = os.environ.get("FACEPIPE_BROKER_URL", "redis://localhost:6379/0")
# TLS: a rediss:// broker verifies the server's certificate, against the system CAs or
# the bundle in FACEPIPE_TLS_CA_CERTS.
if broker_url.startswith("rediss://"):
    import ssl

    broker_use_ssl = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": os.environ.get("FACEPIPE_TLS_CA_CERTS") or None,
    }

# Results travel through facepipe's own Redis keys, not Celery's result backend.
result_backend = os.environ.get("FACEPIPE_RESULT_BACKEND") or None
task_ignore_result = True

# JSON only: a pickle payload from the network would be code execution.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# One queue per stage; the writer queue is consumed by one process with -c 1.
task_routes = {
    "facepipe.detect": {"queue": "detect"},
    "facepipe.embed": {"queue": "embed"},
    "facepipe.write": {"queue": "writer"},
}
task_default_queue = "detect"

# At-least-once delivery; the writer makes it exactly-once.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
broker_transport_options = {
    # A message taken by a worker that vanished (SIGKILL, power loss) is redelivered
    # after this many seconds; keep it above the longest chunk's processing time.
    "visibility_timeout": int(os.environ.get("FACEPIPE_VISIBILITY_TIMEOUT", "900")),
    # Look for such abandoned messages every few seconds (kombu's default is ~100 s).
    "unacked_restore_interval": int(os.environ.get("FACEPIPE_RESTORE_INTERVAL", "5")),
    "unacked_restore_throttle": 1,
}
broker_connection_retry_on_startup = True

# Events for Flower (FACEPIPE_TASK_EVENTS=0 turns them off; the embedded default does).
worker_send_task_events = os.environ.get("FACEPIPE_TASK_EVENTS", "1") != "0"
task_send_sent_event = worker_send_task_events
task_track_started = True

worker_hijack_root_logger = False
