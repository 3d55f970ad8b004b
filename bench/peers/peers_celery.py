"""The Celery side of scripts/bench-peers: a no-op task, acked late, persistent, confirmed."""
import os

from celery import Celery

app = Celery("peers_celery", broker=os.environ["PEERS_URL"])
app.conf.update(
    task_acks_late=True,
    task_default_queue="peers-celery",
    task_default_delivery_mode="persistent",
    task_serializer="json",
    task_ignore_result=True,
    # Prefetch = multiplier x processes: 100 per process, as warren's --prefetch 100 per worker.
    worker_prefetch_multiplier=100,
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
)

_counter = None


def tick():
    """Counts a finished job: one byte appended to the counter file (atomic under O_APPEND)."""
    global _counter
    if _counter is None:
        _counter = os.open(os.environ["PEERS_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_counter, b".")


@app.task(name="bench_noop")
def noop(seq, sent_us, pad):
    tick()


def enqueue(seq, sent_us, pad):
    noop.delay(seq, sent_us, pad)
