"""Celery settings for facepipe's workers and dispatcher.

Every value a deployment may change comes from :class:`facepipe.settings.WorkerSettings`
(``FACEPIPE_*`` variables, each with one documented default; see compose/README.md); the
routes come from :mod:`facepipe.distributed.stages`; the rest are the guarantees the pipeline relies
on and should not be changed.
"""

from facepipe.distributed.bridge import tls_options
from facepipe.distributed.stages import DETECT, ROUTES
from facepipe.settings import load_worker_settings

_settings = load_worker_settings()

broker_url = _settings.broker_url or "redis://localhost:6379/0"
# TLS: a rediss:// broker verifies the server's certificate, against the system CAs or
# the bundle in FACEPIPE_TLS_CA_CERTS.
broker_use_ssl = tls_options(broker_url, _settings.tls_ca_certs)

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
    # A scan holds a lock in Redis ("unacked_mutex") for milliseconds; a worker killed during
    # one (or cut off by a broker restart) leaves it behind until it expires, and meanwhile no
    # worker redelivers anything. kombu's default expiry is 5 minutes; 10 s bounds that stall.
    # Two scans that overlap after an expiry are harmless: each restore is a WATCH transaction.
    "unacked_mutex_expire": 10,
    # A worker consuming several queues (-Q embed,detect) takes from the first non-empty one
    # in the order given, instead of kombu's default round robin: the embedded default's embed
    # workers help with detection only when there is nothing to embed.
    "queue_order_strategy": "priority",
    # (health_check_interval and socket_keepalive stay kombu's: set to 10 s and on, an embed
    # worker killed and restarted lost its message in 3 of 5 runs of tests/test_faults.py's
    # kill test, against 0 of 9 without them.)
}

# Broker outages (a Redis restart, a network cut), set deliberately: a worker waits for its
# broker for as long as it takes, and loses no work meanwhile.
# * A worker started before its broker, or that loses it, reconnects (every 2, 4 ... 30 s)
#   without limit: Celery's default gives up after 100 tries (about 50 minutes) and exits.
broker_connection_retry_on_startup = True
broker_connection_retry = True
broker_connection_max_retries = None
broker_connection_timeout = 10
# * A chunk running when the connection drops is finished, not cancelled: its writes to the
#   run store wait for the broker (facepipe.distributed.store.connect, ride_out), and its late
#   ack then reaches the reconnected broker. Cancelling (Celery 6's default) would throw the
#   work away and leave the message to be redelivered after the visibility timeout (15 min).
worker_cancel_long_running_tasks_on_connection_loss = False
# * A worker handing a chunk to the next stage waits for the broker too (Celery's default
#   gives up after 3 tries in under a second, which would fail the chunk). The dispatcher
#   passes a short policy of its own and shows that it waits (facepipe.distributed.bridge).
task_publish_retry = True
task_publish_retry_policy = {
    "max_retries": None,
    "interval_start": 0.25,
    "interval_step": 0.5,
    "interval_max": 5,
}

# Events for Flower (FACEPIPE_TASK_EVENTS=0 turns them off; the embedded default does).
worker_send_task_events = _settings.task_events
task_send_sent_event = _settings.task_events
task_track_started = True

worker_hijack_root_logger = False
