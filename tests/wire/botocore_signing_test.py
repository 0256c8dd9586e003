"""Our SigV4 signer must produce byte-identical Authorization headers to botocore's.

Each case is a realistic request of the kind spotgrid sends (SQS and DynamoDB JSON calls,
S3 REST calls with a payload hash or UNSIGNED-PAYLOAD, EC2 / Auto Scaling Query POSTs). It is
signed twice with the same credentials and the same frozen time: by botocore's SigV4Auth /
S3SigV4Auth (Debian's python3-botocore) and by tests/sign_tool, which drives our C++ signer the
way the service clients do. Any difference in canonicalisation shows up as a different
signature; the canonical requests are printed side by side to show where.

Run: SPOTGRID_BINARY_DIR=<build dir> /usr/bin/python3 tests/wire/botocore_signing_test.py
"""

import datetime
import json
import os
import subprocess
import sys
import types
import unittest
from unittest import mock
from urllib.parse import quote, urlencode

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

SIGN_TIME = datetime.datetime(2026, 1, 1, 0, 0, 0)
AMZ_DATE = SIGN_TIME.strftime("%Y%m%dT%H%M%SZ")
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = (
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6"
    "example+session/token=="
)
REGION = "us-east-1"
JSON_10 = "application/x-amz-json-1.0"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def s3_key_path(bucket, key):
    # botocore's S3 serializer encodes keys with quote(key, safe='/~'), as our client does.
    return "/" + bucket + "/" + quote(key, safe="/~")


def json_body(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def build_cases():
    sqs_batch = json_body({
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/spotgrid-run-42",
        "Entries": [
            {"Id": str(i), "MessageBody": json_body({"unit": i, "cmd": "echo  héllo wörld"})}
            for i in range(10)
        ],
    })
    put_item = json_body({
        "TableName": "spotgrid-ledger",
        "Item": {"pk": {"S": "run#42"}, "sk": {"S": "unit#0007"}, "state": {"S": "CLAIMED"},
                 "lease_until": {"N": "1767225900"}},
        "ConditionExpression": "attribute_not_exists(pk) OR #s = :pending",
        "ExpressionAttributeNames": {"#s": "state"},
        "ExpressionAttributeValues": {":pending": {"S": "PENDING"}},
    })
    ec2_form = urlencode([
        ("Action", "TerminateInstances"), ("Version", "2016-11-15"),
        ("InstanceId.1", "i-0123456789abcdef0"), ("InstanceId.2", "i-0fedcba9876543210"),
    ])
    asg_form = urlencode([
        ("Action", "SetInstanceProtection"), ("Version", "2011-01-01"),
        ("AutoScalingGroupName", "spotgrid workers/prod"),
        ("InstanceIds.member.1", "i-0123456789abcdef0"), ("ProtectedFromScaleIn", "true"),
    ])
    weird_key = "runs/42/out put/résumé ሴ/$x+y=z&w/a//b/../c.txt"
    upload_id = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA--"
    return [
        dict(name="sqs_send_message_batch", service="sqs", s3=False, method="POST",
             url="https://sqs.us-east-1.amazonaws.com/",
             headers=[["Content-Type", JSON_10], ["X-Amz-Target", "AmazonSQS.SendMessageBatch"],
                      ["User-Agent", "spotgrid/0.1.0"]],
             body=sqs_batch),
        dict(name="dynamodb_put_item", service="dynamodb", s3=False, method="POST",
             url="https://dynamodb.us-east-1.amazonaws.com/",
             headers=[["Content-Type", JSON_10], ["X-Amz-Target", "DynamoDB_20120810.PutItem"]],
             body=put_item),
        dict(name="dynamodb_with_session_token", service="dynamodb", s3=False, method="POST",
             url="https://dynamodb.us-east-1.amazonaws.com/",
             headers=[["Content-Type", JSON_10], ["X-Amz-Target", "DynamoDB_20120810.GetItem"]],
             body=json_body({"TableName": "t", "Key": {"pk": {"S": "a"}}}),
             session_token=SESSION_TOKEN),
        dict(name="sqs_emulator_endpoint_with_base_path", service="sqs", s3=False,
             method="POST", url="http://127.0.0.1:4567/t-42/",
             headers=[["Content-Type", JSON_10], ["X-Amz-Target", "AmazonSQS.ReceiveMessage"]],
             body=json_body({"QueueUrl": "http://127.0.0.1:4567/000000000000/q",
                             "WaitTimeSeconds": 20, "MaxNumberOfMessages": 10})),
        dict(name="s3_put_with_payload_hash", service="s3", s3=True, method="PUT",
             url="https://spotgrid-results.s3.us-east-1.amazonaws.com/runs/42/unit-7.log",
             headers=[["Content-Type", "text/plain"], ["Content-Length", "23"],
                      ["x-amz-meta-exit-code", "0"]],
             body="hello from unit 7\nbye\n\n"),
        dict(name="s3_put_unsigned_payload", service="s3", s3=True, method="PUT",
             url="https://spotgrid-results.s3.us-east-1.amazonaws.com/runs/42/big.tar",
             headers=[["Content-Type", "application/octet-stream"],
                      ["Content-Length", "5368709120"]],
             payload="UNSIGNED-PAYLOAD"),
        dict(name="s3_key_with_spaces_and_non_ascii", service="s3", s3=True, method="PUT",
             url="http://127.0.0.1:4569" + s3_key_path("spotgrid-results", weird_key),
             headers=[["Content-Type", "text/plain; charset=utf-8"]], body="ünïcödé body"),
        dict(name="s3_upload_part", service="s3", s3=True, method="PUT",
             url="https://spotgrid-results.s3.us-east-1.amazonaws.com/runs/42/big.tar"
                 "?partNumber=3&uploadId=" + quote(upload_id, safe="~"),
             headers=[["Content-Length", "16"]], body="part three bytes"),
        dict(name="s3_create_multipart_upload", service="s3", s3=True, method="POST",
             url="http://127.0.0.1:4569/spotgrid-results/runs/42/big.tar?uploads",
             headers=[["Content-Type", "application/x-tar"]], body=""),
        dict(name="s3_list_objects_v2_with_token", service="s3", s3=True, method="GET",
             url="http://127.0.0.1:4569/t-42/spotgrid-results"
                 "?list-type=2&prefix=runs%2F42%2F&continuation-token=abc%2Bdef%3D%3D",
             headers=[["X-Amz-Meta-Note", "  spaced    out   value  "]], body="",
             session_token=SESSION_TOKEN),
        dict(name="ec2_terminate_instances_form_post", service="ec2", s3=False, method="POST",
             url="https://ec2.us-east-1.amazonaws.com/",
             headers=[["Content-Type", FORM]], body=ec2_form),
        dict(name="autoscaling_form_post_with_token", service="autoscaling", s3=False,
             method="POST", url="http://127.0.0.1:4570/tenant-9/",
             headers=[["Content-Type", FORM]], body=asg_form, session_token=SESSION_TOKEN),
    ]


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return cls(SIGN_TIME.year, SIGN_TIME.month, SIGN_TIME.day,
                   SIGN_TIME.hour, SIGN_TIME.minute, SIGN_TIME.second)


def sign_with_botocore(case):
    """Returns (Authorization, canonical request) as botocore computes them."""
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, case.get("session_token"))
    body = case.get("body", "").encode("utf-8")
    request = AWSRequest(method=case["method"], url=case["url"],
                         headers=dict(case["headers"]), data=body)
    if case["s3"]:
        auth = botocore.auth.S3SigV4Auth(credentials, case["service"], REGION)
        if case.get("payload") == "UNSIGNED-PAYLOAD":
            # What botocore does for an S3 client configured with payload signing off.
            request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    else:
        auth = botocore.auth.SigV4Auth(credentials, case["service"], REGION)
    # Keep the canonical request botocore signed (recomputing it afterwards would include the
    # Authorization header it just added).
    captured = {}
    compute_canonical = auth.canonical_request

    def capture(req):
        captured["canonical"] = compute_canonical(req)
        return captured["canonical"]

    auth.canonical_request = capture
    # add_auth reads datetime.datetime.utcnow(); freeze only botocore.auth's view of it.
    frozen = types.SimpleNamespace(datetime=_FrozenDatetime)
    with mock.patch.object(botocore.auth, "datetime", frozen):
        auth.add_auth(request)
    return request.headers["Authorization"], captured["canonical"]


def sign_with_tool(cases):
    binary_dir = os.environ.get("SPOTGRID_BINARY_DIR")
    if not binary_dir:
        raise RuntimeError("SPOTGRID_BINARY_DIR is not set (the build directory)")
    tool = os.path.join(binary_dir, "tests", "sign_tool")
    if not os.access(tool, os.X_OK):
        raise RuntimeError(f"{tool} is missing: build the sign_tool target")
    lines = []
    for case in cases:
        line = {k: case[k] for k in ("method", "url", "headers", "service", "s3")}
        line.update(region=REGION, time=AMZ_DATE, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        if "payload" in case:
            line["payload"] = case["payload"]
        else:
            line["body"] = case["body"]
        if case.get("session_token"):
            line["session_token"] = case["session_token"]
        lines.append(json.dumps(line, ensure_ascii=False))
    result = subprocess.run([tool], input="\n".join(lines) + "\n", capture_output=True,
                            text=True, timeout=60, check=False)
    outputs = [json.loads(l) for l in result.stdout.splitlines() if l.strip()]
    if len(outputs) != len(cases):
        raise RuntimeError(f"sign_tool answered {len(outputs)} of {len(cases)} lines "
                           f"(exit {result.returncode}): {result.stderr}")
    return outputs


CASES = build_cases()


class BotocoreSigningTest(unittest.TestCase):
    matched = 0

    @classmethod
    def setUpClass(cls):
        cls.ours = dict(zip((c["name"] for c in CASES), sign_with_tool(CASES)))

    @classmethod
    def tearDownClass(cls):
        print(f"\nbotocore {botocore.__version__} comparison: "
              f"{cls.matched}/{len(CASES)} cases produced identical Authorization headers",
              file=sys.stderr)

    def check(self, case):
        theirs_auth, theirs_canonical = sign_with_botocore(case)
        ours = self.ours[case["name"]]
        self.assertNotIn("error", ours, ours.get("error"))
        # Guard against a test that passes because both sides ignored the frozen time.
        self.assertIn(f"/{AMZ_DATE[:8]}/{REGION}/{case['service']}/aws4_request",
                      theirs_auth)
        self.assertEqual(
            ours["authorization"], theirs_auth,
            f"\n--- our canonical request ---\n{ours['canonical_request']}"
            f"\n--- botocore canonical request ---\n{theirs_canonical}")
        type(self).matched += 1

    def test_covers_the_required_kinds_of_request(self):
        self.assertGreaterEqual(len(CASES), 8)
        names = {c["name"] for c in CASES}
        for required in ("sqs_send_message_batch", "dynamodb_put_item",
                         "s3_put_with_payload_hash", "s3_put_unsigned_payload",
                         "s3_key_with_spaces_and_non_ascii", "s3_upload_part",
                         "dynamodb_with_session_token", "ec2_terminate_instances_form_post"):
            self.assertIn(required, names)

    def test_signatures_differ_when_the_body_differs(self):
        # A comparison that cannot fail proves nothing: one byte of body must change both.
        case = dict(CASES[1], body=CASES[1]["body"].replace("0007", "0008"))
        theirs, _ = sign_with_botocore(case)
        ours = sign_with_tool([case])[0]
        self.assertEqual(ours["authorization"], theirs)
        self.assertNotEqual(theirs, sign_with_botocore(CASES[1])[0])

    def test_s3_unsigned_payload_is_really_unsigned_on_both_sides(self):
        case = next(c for c in CASES if c["name"] == "s3_put_unsigned_payload")
        _, theirs_canonical = sign_with_botocore(case)
        self.assertTrue(theirs_canonical.endswith("\nUNSIGNED-PAYLOAD"))
        self.assertTrue(self.ours[case["name"]]["canonical_request"]
                        .endswith("\nUNSIGNED-PAYLOAD"))


def _make_test(case):
    def test(self):
        self.check(case)
    return test


for _case in CASES:
    setattr(BotocoreSigningTest, "test_identical_authorization_" + _case["name"],
            _make_test(_case))


if __name__ == "__main__":
    unittest.main(verbosity=2)
