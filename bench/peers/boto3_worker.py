#!/usr/bin/python3
"""The peer of the agent: the worker loop a user would otherwise write with boto3.

Usage: boto3_worker.py QUEUE_URL WORK_DIR

Long-polls QUEUE_URL (20 s, one message at a time), runs each message's "command" with
/bin/sh -c in WORK_DIR/<unit>/ (with $OUT set to that directory), then deletes the message.
No ledger, no lease, no heartbeat, no checkpoint or S3 sync: the least a worker does, so its
idle footprint and dispatch latency are a floor for any boto3 worker. Endpoint, region and
credentials come from the environment (AWS_ENDPOINT_URL_SQS, AWS_REGION, ...).
"""
import json
import os
import signal
import subprocess
import sys

import boto3


def main():
    queue_url, work_dir = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sqs = boto3.client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS"),
                       region_name=os.environ.get("AWS_REGION", "us-east-1"))
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1,
                                       WaitTimeSeconds=20).get("Messages", [])
        for message in messages:
            body = json.loads(message["Body"])
            out = os.path.join(work_dir, body["unit"])
            os.makedirs(out, exist_ok=True)
            subprocess.run(["/bin/sh", "-c", body["command"]], cwd=out,
                           env=dict(os.environ, OUT=out), check=False)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    main()
