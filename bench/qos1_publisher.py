"""Bench-only: publish N QoS 1 messages as fast as the broker acknowledges them.

    python bench/qos1_publisher.py PORT N [--inflight 20] [--size 100]

One paho-mqtt client (the library GreenGauge's agent and collector use), at most
--inflight unacknowledged messages; exits once every PUBACK arrived. (mosquitto_pub -l
2.0.11 floods the broker and gets disconnected "due to out of memory", losing most.)
"""

from __future__ import annotations

import argparse
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("messages", type=int)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    acked = threading.Semaphore(0)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-limit-pub")
    client.max_inflight_messages_set(args.inflight)
    client.max_queued_messages_set(args.inflight)
    client.on_publish = lambda *_: acked.release()
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    payload = b"x" * args.size
    sent = 0
    while sent < args.messages:
        info = client.publish("limit", payload, qos=1)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            acked.acquire()
            acked.release()
            time.sleep(0)
            continue
        sent += 1
    for _ in range(args.messages):
        acked.acquire()
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
