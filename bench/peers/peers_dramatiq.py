"""The Dramatiq side of scripts/bench-peers: a no-op actor, acked after the job, persistent, confirmed."""
import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

dramatiq.set_broker(RabbitmqBroker(url=os.environ["PEERS_URL"], confirm_delivery=True))

_counter = None


def tick():
    """Counts a finished job: one byte appended to the counter file (atomic under O_APPEND)."""
    global _counter
    if _counter is None:
        _counter = os.open(os.environ["PEERS_COUNTER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_counter, b".")


@dramatiq.actor(queue_name="peers-dramatiq", max_retries=0)
def noop(seq, sent_us, pad):
    tick()


def enqueue(seq, sent_us, pad):
    noop.send(seq, sent_us, pad)
