"""Runs one peer framework's no-op benchmark: confirmed enqueues per second,
then the drain rate of a worker over the queue it filled (first job
finished to last, counted by the jobs themselves). Prints
`<framework> enqueue=<jobs/s> drain=<jobs/s>`.

usage: run.py celery|dramatiq <jobs> <processes>
"""
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import pika

DEADLINE = 300  # seconds per step: the benchmark always stops by itself


def purge(url, queue):
    """Empties the queue if it exists (each framework declares it with its own arguments)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_purge(queue)
    except pika.exceptions.ChannelClosedByBroker:
        pass  # not declared yet
    finally:
        connection.close()


def count(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def main():
    framework, jobs, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    url = os.environ["PEERS_URL"]
    queue = f"peers-{framework}"
    counter = tempfile.NamedTemporaryFile(prefix=f"peers-{framework}-", delete=False).name
    os.environ["PEERS_COUNTER"] = counter
    module = importlib.import_module(f"peers_{framework}")
    purge(url, queue)

    pad = "x" * 48
    start = time.perf_counter()
    for seq in range(jobs):
        module.enqueue(seq, int(time.time() * 1e6), pad)
    enqueue_rate = jobs / (time.perf_counter() - start)

    if framework == "celery":
        command = ["celery", "-A", "peers_celery", "worker", "--pool", "prefork",
                   "--concurrency", str(processes), "--loglevel", "WARNING", "-Q", queue,
                   "--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = dict(os.environ)
    else:
        command = ["dramatiq", "peers_dramatiq", "--processes", str(processes), "--threads", "8"]
        # 100 unacknowledged deliveries per worker process, as warren's --prefetch 100.
        env = dict(os.environ, dramatiq_queue_prefetch="100")
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + DEADLINE
        while count(counter) == 0:
            if time.monotonic() > deadline or worker.poll() is not None:
                sys.exit(f"{framework}: the worker ran no job")
            time.sleep(0.005)
        first = time.perf_counter()
        while count(counter) < jobs:
            if time.monotonic() > deadline or worker.poll() is not None:
                sys.exit(f"{framework}: the worker ran {count(counter)} of {jobs} jobs")
            time.sleep(0.005)
        drain_rate = jobs / (time.perf_counter() - first)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        os.unlink(counter)
        purge(url, queue)
    print(f"{framework} enqueue={enqueue_rate:.0f} drain={drain_rate:.0f}", flush=True)


if __name__ == "__main__":
    main()
