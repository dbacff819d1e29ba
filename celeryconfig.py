"""Celery settings for facepipe's workers and dispatcher.

Every value a deployment may change comes from :class:`facepipe.settings.WorkerSettings`
(``FACEPIPE_*`` variables, each with one documented default; see compose/README.md); the
routes come from :mod:`facepipe.distributed.stages`; the rest are the guarantees the pipeline relies
on and should not be changed.
"""

from facepipe.distributed.stages import DETECT, ROUTES
from facepipe.settings import load_worker_settings

_settings = load_worker_settings()

broker_url = _settings.broker_url or "redis://localhost:6379/0"
# TLS: a rediss:// broker verifies the server's certificate, against the system CAs or
# the bundle in FACEPIPE_TLS_CA_CERTS.
if broker_url.startswith("rediss://"):
    import ssl

    broker_use_ssl = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(_settings.tls_ca_certs) if _settings.tls_ca_certs else None,
    }

# Results travel through facepipe's own Redis keys, not Celery's result backend.
result_backend = _settings.result_backend
task_ignore_result = True

# JSON only: a pickle payload from the network would be code execution.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# One queue per stage; the writer queue is consumed by one process with -c 1.
task_routes = ROUTES
task_default_queue = DETECT.queue

# At-least-once delivery; the writer makes it exactly-once.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
broker_transport_options = {
    # A message taken by a worker that vanished (SIGKILL, power loss) is redelivered
    # after this many seconds; keep it above the longest chunk's processing time.
    "visibility_timeout": _settings.visibility_timeout,
    # Look for such abandoned messages every few seconds (kombu's default is ~100 s).
    "unacked_restore_interval": _settings.restore_interval,
    "unacked_restore_throttle": 1,
    # A worker consuming several queues (-Q embed,detect) takes from the first non-empty one
    # in the order given, instead of kombu's default round robin: the embedded default's embed
    # workers help with detection only when there is nothing to embed.
    "queue_order_strategy": "priority",
}
broker_connection_retry_on_startup = True

# Events for Flower (FACEPIPE_TASK_EVENTS=0 turns them off; the embedded default does).
worker_send_task_events = _settings.task_events
task_send_sent_event = _settings.task_events
task_track_started = True

worker_hijack_root_logger = False
