"""Real GitHub webhook payloads emitted through hiventd and consumed back."""

from __future__ import annotations

import hivent

from conftest import consumer_class, run_until_connected, webhook_payloads


def test_webhook_payloads_through_hiventd(hiventd, unique):
    payloads = webhook_payloads()
    topic = f"github:{unique}"
    consumer = consumer_class(topic, f"svc-{unique}", partitions=4)(
        hiventd.options(), env=False, expected=len(payloads))
    run_until_connected(consumer)
    with hivent.Client(hiventd.options(), env=False) as client:
        futures = [client.emit_async(topic, payload, key=str(index))
                   for index, payload in enumerate(payloads)]
        assert client.flush(60) == 0
    published = [future.result() for future in futures]
    assert [event.payload for event in published] == payloads
    consumer.run(timeout=60)
    assert len(consumer.events) == len(payloads)
    received = {int(event.key): event for event in consumer.events}
    for index, payload in enumerate(payloads):
        assert received[index].payload == payload, index
        assert received[index].meta == published[index].meta, index


def test_webhook_payloads_through_memory_transport():
    payloads = webhook_payloads()
    hivent.memory.clear()
    with hivent.Client(server={"host": "memory"}, env=False) as client:
        for payload in payloads[:50]:
            client.emit("github:memory", payload)
    assert [event.payload for event in hivent.memory.all()] == payloads[:50]
    assert hivent.memory.includes("github:memory", payloads[7])
