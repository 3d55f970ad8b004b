#!/usr/bin/env python
"""Floods a warren queue with good jobs and bad messages, interleaved, as a
careless non-Rust producer would.

Publishes COUNT good `record` jobs (JSON `{"seq": N, "sleep_ms": 0}`,
type=record, persistent) and COUNT bad messages, one after the other, with
publisher confirms. The bad ones cycle through four kinds, each tagged with
the header `flood-bad` = "<kind>-<n>" so the test can find every one of them
in the dead-letter queue:

- `bytes`: random bytes typed `record` (never valid UTF-8, so never JSON);
- `json`: JSON that is not a `record` (wrong field types, truncated, null);
- `unknown`: a valid `record` body typed with a job nobody registered;
- `untyped`: a valid `record` body with no `type` at all.

Prints "published <good> good and <bad> bad" once the broker confirmed them
all. QUEUE, AMQP_URL and COUNT configure it.
"""
import json
import os
import random

import pika

queue = os.environ["QUEUE"]
url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
count = int(os.environ.get("COUNT", "1000"))

KINDS = ["bytes", "json", "unknown", "untyped"]
WRONG_JSON = [
    '{{"seq":"{n}","sleep_ms":0}}',
    '{{"seq":{n},"sleep_ms":',
    "null",
    '{{"seq":-{n},"sleep_ms":0}}',
    '"record {n}"',
]


def bad(n):
    """The body, type and tag of the n-th bad message."""
    kind = KINDS[n % len(KINDS)]
    good_body = json.dumps({"seq": n, "sleep_ms": 0}).encode()
    if kind == "bytes":
        # 0xff never occurs in UTF-8: whatever follows, this is not JSON.
        body = b"\xff" + random.randbytes(random.randint(0, 64))
        return body, "record", kind
    if kind == "json":
        return WRONG_JSON[n % len(WRONG_JSON)].format(n=n).encode(), "record", kind
    if kind == "unknown":
        return good_body, "no_such_job", kind
    return good_body, None, kind


connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)
# Each basic_publish now waits for the broker's ack and raises if it refuses.
channel.confirm_delivery()

for n in range(count):
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=json.dumps({"seq": n, "sleep_ms": 0}).encode(),
        properties=pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            type="record",
            content_type="application/json",
        ),
    )
    body, kind_type, kind = bad(n)
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=body,
        properties=pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            type=kind_type,
            headers={"flood-bad": f"{kind}-{n}"},
        ),
    )

print(f"published {count} good and {count} bad", flush=True)
connection.close()
