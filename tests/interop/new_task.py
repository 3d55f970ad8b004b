#!/usr/bin/env python
"""The RabbitMQ work-queue tutorial's producer (tutorial two), in Python.

Sends the command-line words (or "Hello World!") as a plain-text, persistent
message to the durable queue `task_queue` through the default exchange: no
JSON, no `type` property, no headers. QUEUE and AMQP_URL override the queue
and the broker so the tests can run it on a queue of their own.
"""
import os
import sys
import time

import pika

queue = os.environ.get("QUEUE", "task_queue")
url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key=queue,
    body=message.encode(),
    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
)
print(f" [x] Sent {message}", flush=True)
time.sleep(0.5)
connection.close()
