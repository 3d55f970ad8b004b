#!/usr/bin/env python3
"""Writes starting inputs for the fuzz targets into fuzz/corpus/<target>/.

libFuzzer finds its way from nothing to small content headers in seconds,
but not to what takes many bytes: headers nested past the parser's bound,
headers too large for a 32 KiB frame, a whole JSON job. These seeds start
it there. Run from anywhere: `python3 fuzz/seed.py` (fuzz/README.md).
"""

import json
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent


def short(text):
    data = text if isinstance(text, bytes) else text.encode()
    assert len(data) <= 255
    return bytes([len(data)]) + data


def long(data):
    data = data if isinstance(data, bytes) else data.encode()
    return struct.pack(">I", len(data)) + data


def table(entries):
    """A field table: (name, encoded value with its type byte) pairs."""
    body = b"".join(short(name) + value for name, value in entries)
    return struct.pack(">I", len(body)) + body


def array(values):
    body = b"".join(values)
    return struct.pack(">I", len(body)) + body


# Field values, type byte first, as RabbitMQ's own field types.
def S(text):
    return b"S" + long(text)


def l(n):
    return b"l" + struct.pack(">q", n)


def T(secs):
    return b"T" + struct.pack(">Q", secs)


def F(entries):
    return b"F" + table(entries)


def A(values):
    return b"A" + array(values)


EVERY_TYPE = [
    ("t", b"t\x01"),
    ("b", b"b\xff"),
    ("B", b"B\xff"),
    ("s", b"s" + struct.pack(">h", -2)),
    ("u", b"u" + struct.pack(">H", 65535)),
    ("I", b"I" + struct.pack(">i", -3)),
    ("i", b"i" + struct.pack(">I", 4)),
    ("l", l(-5)),
    ("f", b"f" + struct.pack(">f", 1.5)),
    ("d", b"d" + struct.pack(">d", -2.5)),
    ("D", b"D\x02" + struct.pack(">I", 12345)),
    ("S", S("text")),
    ("x", b"x" + long(b"\x00\xff")),
    ("T", T(1_700_000_000)),
    ("V", b"V"),
    ("A", A([l(1), S("two")])),
    ("F", F([("inner", l(3))])),
]

# Property flags, in the order their values follow (AMQP 0-9-1, basic class).
CONTENT_TYPE, HEADERS, DELIVERY_MODE, MESSAGE_ID, TIMESTAMP, TYPE = (
    1 << 15,
    1 << 13,
    1 << 12,
    1 << 7,
    1 << 6,
    1 << 5,
)


def content_header(headers, kind=b"record", message_id=b"0190a4b2-7c1e-7d2a-9b3c-4d5e6f708192"):
    """The payload of a content-header frame for a job message."""
    flags = CONTENT_TYPE | HEADERS | DELIVERY_MODE | MESSAGE_ID | TIMESTAMP | TYPE
    return (
        struct.pack(">HHQH", 60, 0, 2, flags)
        + short("application/json")
        + table(headers)
        + b"\x02"
        + short(message_id)
        + struct.pack(">Q", 1_700_000_000)
        + short(kind)
    )


def nested(depth):
    value = l(1)
    for level in range(depth):
        value = A([value]) if level % 2 == 0 else F([("inner", value)])
    return value


CONTENT_HEADER = {
    "job": content_header([("warren-attempt", l(1))]),
    "retry": content_header(
        [
            ("warren-attempt", l(3)),
            ("warren-retries", b"I" + struct.pack(">i", 5)),
            ("warren-backoff-ms", b"u" + struct.pack(">H", 250)),
            ("warren-eta", T(1_700_000_100)),
            ("warren-first-failure-at", T(1_700_000_000)),
            ("warren-last-error", S("disk full")),
            ("x-death", A([F([("reason", S("expired")), ("time", T(1_700_000_050)), ("count", l(2))])])),
            ("x-first-death-reason", S("expired")),
            ("CC", A([S("other")])),
        ]
    ),
    "every-type": content_header(EVERY_TYPE),
    "nested-100": content_header([("deep", nested(100))]),
    "not-utf8": content_header([(b"k\xff\xfe", l(1))], kind=b"rec\xff\xfeord", message_id=b"\xff" * 128),
    "header-40k": content_header([("warren-attempt", l(1)), ("big", S("x" * 40_000))]),
    "headers-200": content_header([(f"{n:0>250}", l(n)) for n in range(200)]),
}

RECORD = {
    "id": 7,
    "name": "cat.png",
    "score": 0.5,
    "tags": ["a", "b"],
    "parent": {
        "id": 1,
        "name": "",
        "score": -1e300,
        "tags": [],
        "parent": None,
        "attributes": {},
        "kind": "Plain",
    },
    "attributes": {"w": 640, "h": -480},
    "kind": {"Named": {"width": 640, "height": 480}},
}

BODY = {
    "record.json": json.dumps(RECORD).encode(),
    "kinds.json": json.dumps([{"Sized": 3}, {"Pair": [-1, True]}, "Plain"]).encode(),
    "line.txt": "Hello World... é".encode(),
    "command.txt": b"Start",
    "nested.json": b"[" * 200 + b"]" * 200,
}


def write(target, seeds):
    folder = FUZZ / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / f"seed-{name}").write_bytes(data)
    print(f"{len(seeds)} seeds in {folder.relative_to(FUZZ.parent)}")


write("content_header", CONTENT_HEADER)
write("body", BODY)
