"""Another client of the system: Confluent's own Python client (confluent-kafka[avro], pinned in
deploy/requirements-dev.txt) reads topics the services wrote, through the schema registry, as
a Java or Python consumer of a Confluent stack would.

Usage: read_topics.py --bootstrap B --registry R TOPIC=COUNT [TOPIC=COUNT ...]
Prints one JSON object: {"<topic>": [<record>, ...], ...}; uuids as strings, timestamps as epoch
milliseconds. Exits non-zero if a topic does not yield COUNT records within 30 seconds.
"""

import argparse
import datetime
import json
import sys
import uuid

from confluent_kafka import DeserializingConsumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    if isinstance(value, datetime.datetime):
        return int((value - EPOCH).total_seconds() * 1000)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value)}")


def read(bootstrap, registry, topic, count):
    consumer = DeserializingConsumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"read-topics-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "value.deserializer": AvroDeserializer(registry, conf={"subject.name.strategy.type": "TOPIC"}),
    })
    consumer.subscribe([topic])
    records = []
    try:
        while len(records) < count:
            message = consumer.poll(30)
            if message is None:
                sys.exit(f"{topic}: timed out after {len(records)} of {count} records")
            if message.error():
                sys.exit(f"{topic}: consumer error: {message.error()}")
            records.append(message.value())
    finally:
        consumer.close()
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("topics", nargs="+", help="TOPIC=COUNT")
    args = parser.parse_args()
    registry = SchemaRegistryClient({"url": args.registry})
    out = {}
    for spec in args.topics:
        topic, count = spec.rsplit("=", 1)
        out[topic] = read(args.bootstrap, registry, topic, int(count))
    print(json.dumps(out, default=to_json))


if __name__ == "__main__":
    main()
