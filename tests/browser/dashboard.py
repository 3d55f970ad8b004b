"""The dashboard in a real headless Chromium, driven through chromedriver's
WebDriver HTTP API with nothing but the standard library (and pika, to
write a dead letter as a worker would).

It starts the test-worker binary's `dashboard`, enqueues two jobs, and
checks that the queues page shows their depth; starts a worker and checks
the workers page lists it; then clicks Retry on a dead letter and checks
that the job is back and runs, once. It saves screenshots of the three
pages to docs/ when WARREN_SCREENSHOTS names a directory.

Usage: dashboard.py <test-worker binary> (AMQP_URL names the broker).
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pika

PATIENCE = 45  # seconds any wait may take before the test fails instead
AMQP_URL = os.environ.get("AMQP_URL", "amqp://127.0.0.1:5672/%2f")


def fail(message):
    print(f"browser test FAILED: {message}", file=sys.stderr)
    sys.exit(1)


class Process:
    """A program started here, its output lines collected."""

    def __init__(self, args, env):
        self.lines = []
        self.proc = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern, what):
        deadline = time.time() + PATIENCE
        while time.time() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            time.sleep(0.1)
        fail(f"{what}: not within {PATIENCE}s; output:\n" + "\n".join(self.lines))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """One chromedriver session of headless Chromium."""

    def __init__(self):
        port = free_port()
        self.driver = subprocess.Popen(
            ["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + PATIENCE
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.time() > deadline:
                    fail("chromedriver did not start")
                time.sleep(0.1)
        options = {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,700"],
        }
        session = self._call(
            "POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        )
        self.session = f"/session/{session['sessionId']}"

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=PATIENCE) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            fail(f"WebDriver {method} {path}: {error.read().decode()}")

    def open(self, url):
        self._call("POST", f"{self.session}/url", {"url": url})

    def run(self, script, *args):
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": list(args)})

    def until(self, script, what, *args):
        """Waits until `script` returns something truthy; returns it."""
        deadline = time.time() + PATIENCE
        while time.time() < deadline:
            value = self.run(script, *args)
            if value:
                return value
            time.sleep(0.25)
        fail(f"{what}: not within {PATIENCE}s; the page says: {self.run('return document.body.innerText')}")

    def click(self, selector):
        element = self._call("POST", f"{self.session}/element", {"using": "css selector", "value": selector})
        self._call("POST", f"{self.session}/element/{next(iter(element.values()))}/click", {})

    def screenshot(self, name):
        directory = os.environ.get("WARREN_SCREENSHOTS")
        if directory:
            with open(os.path.join(directory, name), "wb") as file:
                file.write(base64.b64decode(self._call("GET", f"{self.session}/screenshot")))

    def quit(self):
        try:
            self._call("DELETE", self.session)
        finally:
            self.driver.terminate()
            self.driver.wait(10)


def publish_dead_letter(channel, queue, seq):
    """The dead letter a worker writes for `record` job `seq`; its id."""
    job_id = str(uuid.uuid4())
    now = int(time.time())
    channel.queue_declare(f"{queue}.dead", durable=True)
    channel.basic_publish(
        "",
        f"{queue}.dead",
        json.dumps({"seq": seq, "sleep_ms": 0}).encode(),
        pika.BasicProperties(
            type="record",
            message_id=job_id,
            content_type="application/json",
            delivery_mode=2,
            timestamp=now - 60,
            headers={
                "warren-attempt": 3,
                "warren-dead-reason": "failed",
                "warren-dead-error": "payment service answered 503",
                "warren-dead-at": now,
                "warren-dead-queue": queue,
            },
        ),
    )
    return job_id


def main():
    worker_bin = sys.argv[1]
    prefix = f"demo-{uuid.uuid4().hex[:6]}-"
    queue = f"{prefix}work"
    env = dict(os.environ, AMQP_URL=AMQP_URL, WARREN_QUEUE_PREFIX=prefix, WARREN_UNKNOWN_JOB_WINDOW="0s")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    processes = []
    browser = None
    try:
        dashboard = Process([worker_bin, "dashboard", "--addr", "127.0.0.1:0"], env)
        processes.append(dashboard)
        base = dashboard.wait_for(r"url=(http://\S+)", "the dashboard's URL").group(1)
        for seq in (1, 2):
            subprocess.run(
                [worker_bin, "enqueue", "record", json.dumps({"seq": seq, "sleep_ms": 0})],
                env=env, check=True, stdout=subprocess.DEVNULL,
            )
        job_id = publish_dead_letter(channel, queue, 7)
        browser = Browser()

        # The queues page shows the depth, redrawn live from the JSON API.
        browser.open(base + "queues")
        cell = "return Array.from(document.querySelectorAll('#queues tbody tr'))" \
            ".filter(r => r.cells[0].textContent === arguments[0])" \
            ".map(r => [r.querySelector('[data-key=ready]').textContent, r.cells[10].textContent])[0];"
        browser.until(cell.replace("return", "const row =") + " return row && row[0] === '2' && row[1] === '1';",
                      "the queue's depth (2) and dead count (1) on the queues page", queue)
        browser.screenshot("dashboard-queues.png")

        # The workers page lists a running worker, from its heartbeats.
        worker = Process([worker_bin, "work", "--queues", "work", "--workers", "1", "--name", "billing"], env)
        processes.append(worker)
        worker.wait_for(r"done seq=2", "the two enqueued jobs run")
        browser.open(base + "workers")
        browser.until(
            "return Array.from(document.querySelectorAll('#workers tbody tr'))"
            ".some(r => r.cells[0].textContent === 'billing' && r.querySelector('[data-key=done]').textContent === '2');",
            "the worker and its 2 jobs on the workers page",
        )
        browser.screenshot("dashboard-workers.png")

        # A click on Retry brings the dead job back, and it runs once.
        browser.open(base + "dead?queue=" + queue)
        browser.until("return document.body.innerText.includes(arguments[0]);", "the dead letter listed", job_id)
        browser.screenshot("dashboard-dead-letters.png")
        browser.click(f'button[data-action="retry"][data-id="{job_id}"]')
        browser.until("return document.getElementById('result').textContent.startsWith('retried 1 dead letter');",
                      "the retry's answer on the page")
        worker.wait_for(r"ran seq=7 .*attempt=1", "the retried job running")
        browser.until("return document.getElementById('dead-total') && "
                      "document.getElementById('dead-total').textContent === '0';",
                      "the page, reloaded, showing no dead letter")
        runs = [line for line in worker.lines if line.startswith("ran seq=7 ")]
        if len(runs) != 1:
            fail(f"the retried job ran {len(runs)} times: {runs}")
        left = channel.queue_declare(f"{queue}.dead", passive=True).method.message_count
        if left != 0:
            fail(f"{left} dead letters left after the retry")
        print("browser test passed: depth shown, worker listed, a retry click ran the dead job once")
    finally:
        if browser:
            browser.quit()
        for process in processes:
            process.stop()
        for name in (queue, f"{queue}.dead"):
            channel.queue_delete(name)
        channel.exchange_delete(f"{prefix}warren.heartbeats")
        connection.close()


if __name__ == "__main__":
    main()
