#!/usr/bin/python3
"""The peer of `controller enqueue`: what a researcher writes with boto3.

Usage: boto3_enqueue.py GRID.csv QUEUE_URL TABLE
Reads the grid, puts one item per row with the table's batch_writer, and sends one message per
row with send_message_batch in tens: the plain script the issue describes. Endpoints come from
AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_DYNAMODB (passed explicitly: boto3 1.26 predates them).
"""
import csv
import json
import os
import shlex
import sys
import time

import boto3


def main():
    grid, queue_url, table_name = sys.argv[1:4]
    region = os.environ.get("AWS_REGION", "us-east-1")
    sqs = boto3.client("sqs", region_name=region, endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"])
    ddb = boto3.resource("dynamodb", region_name=region,
                         endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    table = ddb.Table(table_name)
    now = int(time.time())

    with open(grid, newline="") as f:
        rows = list(csv.DictReader(f))

    with table.batch_writer() as batch:
        for n, row in enumerate(rows, start=1):
            command = "python3 simulate.py --alpha {} --beta {} --seed {}".format(
                shlex.quote(row["alpha"]), shlex.quote(row["beta"]), shlex.quote(row["seed"]))
            batch.put_item(Item={
                "pk": "JOB#sweep", "sk": f"U#{n}", "job": "sweep", "unit": str(n),
                "state": "QUEUED", "attempt": 0, "command": command, "params": row,
                "created_at": now,
            })

    entries = []
    for n in range(1, len(rows) + 1):
        entries.append({"Id": str(len(entries)),
                        "MessageBody": json.dumps({"v": 1, "job": "sweep", "unit": str(n)})})
        if len(entries) == 10:
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            entries = []
    if entries:
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


if __name__ == "__main__":
    main()
