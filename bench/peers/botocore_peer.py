#!/usr/bin/python3
"""The same micro-operations as bench/*_bench.cc, done by botocore (what boto3 runs).

Prints one JSON object: {"<name>": nanoseconds per operation}. Run with Debian's python
(/usr/bin/python3), which has python3-botocore. The requests mirror the C++ benchmarks:
  sign_dynamodb_json   SigV4 header signing of a DynamoDB PutItem JSON request
  sign_s3_put          SigV4 header signing of an S3 PUT with a payload hash
  encode_send_message_batch   serialising a 10-entry SendMessageBatch to its wire body
  encode_batch_write_item     serialising a 25-item BatchWriteItem (10 attributes) to its body
"""
import datetime
import json
import sys
import time

import botocore.auth
import botocore.credentials
import botocore.serialize
import botocore.session
from botocore.awsrequest import AWSRequest

CREDS = botocore.credentials.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def per_op_ns(fn, min_seconds=0.5):
    """Calls fn repeatedly for at least min_seconds; returns mean ns per call."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            fn()
        n += 100
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed * 1e9 / n


def unit_item(i):
    return {
        "pk": {"S": f"job#sweep-42"}, "sk": {"S": f"unit#{i:08d}"},
        "state": {"S": "QUEUED"}, "attempt": {"N": "0"}, "interruptions": {"N": "0"},
        "command": {"S": f"python3 simulate.py --alpha {i * 0.01:.2f} --beta 3 --seed {i}"},
        "params": {"M": {"alpha": {"S": f"{i * 0.01:.2f}"}, "beta": {"S": "3"}}},
        "created_at": {"N": "1763700000"}, "max_attempts": {"N": "3"},
        "timeout_s": {"N": "3600"},
    }


def main():
    session = botocore.session.get_session()
    results = {}

    body = json.dumps({"TableName": "spotgrid-ledger", "Item": unit_item(7)})

    def sign_dynamodb():
        req = AWSRequest(method="POST", url="https://dynamodb.us-east-1.amazonaws.com/",
                         data=body, headers={
                             "Content-Type": "application/x-amz-json-1.0",
                             "X-Amz-Target": "DynamoDB_20120810.PutItem"})
        botocore.auth.SigV4Auth(CREDS, "dynamodb", "us-east-1").add_auth(req)
    results["sign_dynamodb_json"] = per_op_ns(sign_dynamodb)

    payload = b"x" * 1024

    def sign_s3():
        req = AWSRequest(method="PUT",
                         url="https://s3.us-east-1.amazonaws.com/bucket/prefix/job/unit/output/result.csv",
                         data=payload, headers={"Content-Type": "text/csv"})
        botocore.auth.S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    results["sign_s3_put"] = per_op_ns(sign_s3)

    # Serialisers exactly as boto3 uses them (model-driven).
    sqs_model = session.get_service_model("sqs")
    sqs_ser = botocore.serialize.create_serializer(sqs_model.metadata["protocol"])
    send_op = sqs_model.operation_model("SendMessageBatch")
    entries = [{"Id": str(i), "MessageBody": json.dumps({"job": "sweep-42", "unit": f"{i:08d}"})}
               for i in range(10)]

    def encode_send():
        sqs_ser.serialize_to_request({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/spotgrid-work",
                                      "Entries": entries}, send_op)
    results["encode_send_message_batch"] = per_op_ns(encode_send)
    results["encode_send_message_batch_protocol"] = sqs_model.metadata["protocol"]

    ddb_model = session.get_service_model("dynamodb")
    ddb_ser = botocore.serialize.create_serializer(ddb_model.metadata["protocol"])
    bwi_op = ddb_model.operation_model("BatchWriteItem")
    items = [{"PutRequest": {"Item": unit_item(i)}} for i in range(25)]

    def encode_bwi():
        ddb_ser.serialize_to_request({"RequestItems": {"spotgrid-ledger": items}}, bwi_op)
    results["encode_batch_write_item"] = per_op_ns(encode_bwi)

    results["botocore_version"] = botocore.__version__
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main()
