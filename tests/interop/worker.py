#!/usr/bin/env python
"""The RabbitMQ work-queue tutorial's worker (tutorial two), in Python.

Declares the durable queue, sets prefetch 1 and consumes with no acks
(`noAck: true`, as the tutorial does), printing "[x] Received <msg>", working
a second per '.', then "[x] Done". QUEUE and AMQP_URL override the queue and
the broker.
"""
import os
import time

import pika

queue = os.environ.get("QUEUE", "task_queue")
url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True)
channel.basic_qos(prefetch_count=1)


def callback(ch, method, properties, body):
    message = body.decode()
    print(f" [x] Received {message}", flush=True)
    time.sleep(message.count("."))
    print(" [x] Done", flush=True)


channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
channel.start_consuming()
