"""The independent client of the schema-registry tests: Confluent's own Python client
(confluent-kafka[avro], pinned in deploy/requirements-dev.txt) decodes records the Rust side
produced through our registry, and produces records for the Rust side to decode.

Prints one JSON object: {"decoded": [<record>...], "produced": <count>}.
Timestamps travel as epoch milliseconds in the JSON.
"""

import argparse
import datetime
import json
import sys
import uuid

from confluent_kafka import DeserializingConsumer, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    if isinstance(value, datetime.datetime):
        return int((value - EPOCH).total_seconds() * 1000)
    raise TypeError(f"cannot encode {type(value)}")


def read(args, registry):
    consumer = DeserializingConsumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"interop-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "value.deserializer": AvroDeserializer(registry, conf={"subject.name.strategy.type": "TOPIC"}),
    })
    consumer.subscribe([args.read_topic])
    decoded = []
    try:
        while len(decoded) < args.count:
            message = consumer.poll(30)
            if message is None:
                sys.exit(f"timed out after {len(decoded)} of {args.count} records")
            if message.error():
                sys.exit(f"consumer error: {message.error()}")
            decoded.append(message.value())
    finally:
        consumer.close()
    return decoded


def write(args, registry, schema, records):
    producer = SerializingProducer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "value.serializer": AvroSerializer(registry, schema, conf={"auto.register.schemas": True}),
    })
    for record in records:
        record = dict(record, created_at=EPOCH + datetime.timedelta(milliseconds=record["created_at"]))
        producer.produce(topic=args.write_topic, value=record)
    if producer.flush(30) != 0:
        sys.exit("not every record was delivered")
    return len(records)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--read-topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--write-topic", required=True)
    parser.add_argument("--schema", required=True, help="Avro schema (JSON) of the written records")
    parser.add_argument("--records", required=True, help="JSON list of the records to write")
    args = parser.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    decoded = read(args, registry)
    produced = write(args, registry, args.schema, json.loads(args.records))
    print(json.dumps({"decoded": decoded, "produced": produced}, default=to_json))


if __name__ == "__main__":
    main()
