#!/usr/bin/python3
"""Drives the IMDS and EC2/Auto Scaling fakes with Debian's aws CLI (botocore).

If the real CLI accepts what the fakes answer, the fakes speak the wire shapes of AWS, so our
own clients tested against them are tested against AWS's shapes. Runs under the `emulators`
ctest fixture: SPOTGRID_TEST_ENV_FILE names the launcher's env file. Each test uses its own
tenant (path prefix) on the shared fakes.
"""

import json
import os
import random
import subprocess
import time
import unittest
import urllib.error
import urllib.request

AWS_CLI = "/usr/bin/aws"
INSTANCE = "i-0123456789abcdef0"
OTHER_INSTANCE = "i-0fedcba9876543210"
_counter = 0


def load_env():
    path = os.environ.get("SPOTGRID_TEST_ENV_FILE")
    if not path:
        raise RuntimeError("SPOTGRID_TEST_ENV_FILE is not set: run through ctest or "
                           "tests/harness/launcher.py run -- /usr/bin/python3 <this file>")
    env = {}
    with open(path, "r", encoding="utf-8") as f:
        for line in f.read().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value
    return env


EMU = load_env()


def unique_tenant(prefix):
    global _counter
    _counter += 1
    return "%s-%d-%d-%04x" % (prefix, os.getpid(), _counter, random.randrange(0x10000))


def http(method, url, body=None, headers=None):
    """(status, body text) of one request; HTTP errors are answers, not exceptions."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def cli_env(**overrides):
    env = dict(os.environ)
    env.update(EMU)
    env["AWS_PAGER"] = ""
    for key in [k for k, v in overrides.items() if v is None]:
        env.pop(key, None)
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


def aws(endpoint, *args, env=None):
    """Runs the aws CLI; returns (exit code, parsed JSON stdout or None, stderr)."""
    argv = [AWS_CLI, "--region", "us-east-1", "--output", "json", "--endpoint-url", endpoint,
            *args]
    proc = subprocess.run(argv, env=env or cli_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


class ImdsFakeWithAwsCliTest(unittest.TestCase):

    def setUp(self):
        self.base = "%s/%s" % (EMU["SPOTGRID_FAKE_IMDS_URL"], unique_tenant("imds"))

    def requests(self):
        status, body = http("GET", self.base + "/_fake/requests")
        self.assertEqual(status, 200)
        return json.loads(body)

    def token(self, ttl="60"):
        status, token = http("PUT", self.base + "/latest/api/token",
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        self.assertEqual(status, 200)
        return token

    def imds_only_env(self):
        # No key variables: the CLI has to take instance-role credentials from IMDS. aws CLI
        # 2.9 appends `latest/api/token` to the endpoint without a separator, hence the '/'.
        return cli_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None,
                       AWS_SESSION_TOKEN=None, AWS_PROFILE=None,
                       AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                       AWS_EC2_METADATA_SERVICE_ENDPOINT=self.base + "/")

    def test_cli_signs_with_instance_role_credentials_fetched_through_token_flow(self):
        env = self.imds_only_env()
        queue = unique_tenant("imds-cli")
        code, out, err = aws(EMU["AWS_ENDPOINT_URL_SQS"], "sqs", "create-queue",
                             "--queue-name", queue, env=env)
        self.assertEqual(code, 0, err)
        self.assertTrue(out["QueueUrl"].endswith("/" + queue))
        code, out, err = aws(EMU["AWS_ENDPOINT_URL_SQS"], "sqs", "list-queues", env=env)
        self.assertEqual(code, 0, err)
        self.assertIn(queue, " ".join(out["QueueUrls"]))
        # s3rver verifies the signature, so this proves the fetched key pair was used.
        code, out, err = aws(EMU["AWS_ENDPOINT_URL_S3"], "s3api", "list-buckets", env=env)
        self.assertEqual(code, 0, err)

        log = self.requests()
        puts = [r for r in log if r["method"] == "PUT"]
        gets = [r for r in log if r["method"] == "GET"]
        self.assertTrue(puts, log)
        for put in puts:
            self.assertEqual(put["path"], "/latest/api/token")
            self.assertEqual(put["headers"]["x-aws-ec2-metadata-token-ttl-seconds"], "21600")
        paths = [g["path"] for g in gets]
        self.assertIn("/latest/meta-data/iam/security-credentials/", paths)
        self.assertIn("/latest/meta-data/iam/security-credentials/spotgrid-worker", paths)
        self.assertLess(log.index(puts[0]), log.index(gets[0]))
        for get in gets:
            self.assertTrue(get["headers"].get("x-aws-ec2-metadata-token"), get)

    def test_request_log_stamps_each_request_with_its_arrival_time(self):
        before = time.time()
        hdr = {"X-aws-ec2-metadata-token": self.token()}
        self.assertEqual(http("GET", self.base + "/latest/meta-data/instance-id", headers=hdr),
                         (200, INSTANCE))
        after = time.time()
        times = [r["time"] for r in self.requests()]
        self.assertEqual(len(times), 2, times)
        self.assertEqual(times, sorted(times))
        self.assertTrue(before <= times[0] and times[-1] <= after, (before, times, after))

    def test_tokenless_get_is_refused_with_401(self):
        status, _ = http("GET", self.base + "/latest/meta-data/instance-id")
        self.assertEqual(status, 401)
        status, _ = http("GET", self.base + "/latest/meta-data/instance-id",
                         headers={"X-aws-ec2-metadata-token": "not-a-token"})
        self.assertEqual(status, 401)

    def test_token_put_rejects_bad_ttl_and_forwarded_requests(self):
        url = self.base + "/latest/api/token"
        self.assertEqual(http("PUT", url)[0], 400)
        self.assertEqual(http("PUT", url, headers={
            "X-aws-ec2-metadata-token-ttl-seconds": "21601"})[0], 400)
        self.assertEqual(http("PUT", url, headers={
            "X-aws-ec2-metadata-token-ttl-seconds": "0"})[0], 400)
        self.assertEqual(http("PUT", url, headers={
            "X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.1"})[0], 403)

    def test_valid_token_reads_defaults_and_expired_token_gets_401(self):
        hdr = {"X-aws-ec2-metadata-token": self.token()}
        self.assertEqual(http("GET", self.base + "/latest/meta-data/instance-id", headers=hdr),
                         (200, INSTANCE))
        self.assertEqual(http("GET", self.base + "/latest/meta-data/instance-life-cycle",
                              headers=hdr), (200, "spot"))
        status, doc = http("GET", self.base + "/latest/dynamic/instance-identity/document",
                           headers=hdr)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(doc)["region"], "us-east-1")
        self.assertEqual(http("POST", self.base + "/_fake/expire-tokens", body="")[0], 200)
        self.assertEqual(http("GET", self.base + "/latest/meta-data/instance-id",
                              headers=hdr)[0], 401)

    def test_control_sets_and_deletes_metadata_per_tenant(self):
        path = "/latest/meta-data/spot/instance-action"
        hdr = {"X-aws-ec2-metadata-token": self.token()}
        self.assertEqual(http("GET", self.base + path, headers=hdr)[0], 404)
        action = '{"action":"terminate","time":"2030-01-01T00:00:00Z"}'
        self.assertEqual(http("PUT", self.base + "/_fake/meta-data/spot/instance-action",
                              body=action)[0], 200)
        self.assertEqual(http("GET", self.base + path, headers=hdr), (200, action))
        # Another tenant does not see it.
        other = "%s/%s" % (EMU["SPOTGRID_FAKE_IMDS_URL"], unique_tenant("imds-other"))
        _, other_token = http("PUT", other + "/latest/api/token",
                              headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        self.assertEqual(http("GET", other + path,
                              headers={"X-aws-ec2-metadata-token": other_token})[0], 404)
        self.assertEqual(http("DELETE", self.base + "/_fake/meta-data/instance-id")[0], 200)
        self.assertEqual(http("GET", self.base + "/latest/meta-data/instance-id",
                              headers=hdr)[0], 404)


class AwsFakeWithAwsCliTest(unittest.TestCase):

    def setUp(self):
        self.base = "%s/%s" % (EMU["SPOTGRID_FAKE_AWS_URL"], unique_tenant("aws"))
        self.put_state({"instances": {INSTANCE: {"group": "workers"},
                                      OTHER_INSTANCE: {"group": "workers",
                                                       "lifecycle_state": "Terminating:Wait"}}})

    def put_state(self, doc):
        status, body = http("PUT", self.base + "/_fake/state", body=json.dumps(doc))
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def state(self):
        return json.loads(http("GET", self.base + "/_fake/state")[1])

    def calls(self):
        return json.loads(http("GET", self.base + "/_fake/calls")[1])

    def only_call(self, action):
        calls = [c for c in self.calls() if c["action"] == action]
        self.assertEqual(len(calls), 1, calls)
        return calls[0]

    def cli(self, *args):
        code, out, err = aws(self.base, *args)
        self.assertEqual(code, 0, err)
        return out

    def test_terminate_instances(self):
        out = self.cli("ec2", "terminate-instances", "--instance-ids", INSTANCE)
        change = out["TerminatingInstances"][0]
        self.assertEqual(change["InstanceId"], INSTANCE)
        self.assertEqual(change["CurrentState"], {"Code": 32, "Name": "shutting-down"})
        self.assertEqual(change["PreviousState"], {"Code": 16, "Name": "running"})
        call = self.only_call("TerminateInstances")
        self.assertEqual(call["service"], "ec2")
        self.assertEqual(call["params"]["InstanceId.1"], INSTANCE)
        self.assertEqual(call["params"]["Version"], "2016-11-15")

    def test_create_tags(self):
        out = self.cli("ec2", "create-tags", "--resources", INSTANCE,
                       "--tags", "Key=spotgrid:grid,Value=g-1", "Key=Name,Value=worker")
        self.assertIsNone(out)  # CreateTags has no output members
        params = self.only_call("CreateTags")["params"]
        self.assertEqual(params["ResourceId.1"], INSTANCE)
        self.assertEqual((params["Tag.1.Key"], params["Tag.1.Value"]), ("spotgrid:grid", "g-1"))
        self.assertEqual((params["Tag.2.Key"], params["Tag.2.Value"]), ("Name", "worker"))
        self.assertEqual(self.state()["instances"][INSTANCE]["tags"],
                         {"spotgrid:grid": "g-1", "Name": "worker"})

    def test_describe_spot_price_history(self):
        self.put_state({"spot_prices": [
            {"instance_type": "c5.large", "availability_zone": "us-east-1a", "price": "0.0312",
             "timestamp": "2030-01-02T03:04:05.000Z"},
            {"instance_type": "m5.large", "availability_zone": "us-east-1b", "price": "0.0400"},
        ]})
        out = self.cli("ec2", "describe-spot-price-history", "--instance-types", "c5.large",
                       "--product-descriptions", "Linux/UNIX")
        self.assertEqual(out["SpotPriceHistory"], [{
            "AvailabilityZone": "us-east-1a", "InstanceType": "c5.large",
            "ProductDescription": "Linux/UNIX", "SpotPrice": "0.0312",
            "Timestamp": "2030-01-02T03:04:05+00:00"}])
        params = self.only_call("DescribeSpotPriceHistory")["params"]
        self.assertEqual(params["InstanceType.1"], "c5.large")
        self.assertEqual(params["ProductDescription.1"], "Linux/UNIX")

    def test_terminate_instance_in_auto_scaling_group(self):
        out = self.cli("autoscaling", "terminate-instance-in-auto-scaling-group",
                       "--instance-id", INSTANCE, "--should-decrement-desired-capacity")
        activity = out["Activity"]
        self.assertEqual(activity["AutoScalingGroupName"], "workers")
        self.assertEqual(activity["StatusCode"], "InProgress")
        self.assertIn(INSTANCE, activity["Description"])
        self.assertTrue(activity["ActivityId"])
        call = self.only_call("TerminateInstanceInAutoScalingGroup")
        self.assertEqual(call["service"], "autoscaling")
        self.assertEqual(call["params"]["InstanceId"], INSTANCE)
        self.assertEqual(call["params"]["ShouldDecrementDesiredCapacity"], "true")
        self.assertEqual(call["params"]["Version"], "2011-01-01")
        self.assertEqual(self.state()["instances"][INSTANCE]["lifecycle_state"], "Terminating")

    def test_set_instance_protection(self):
        self.cli("autoscaling", "set-instance-protection", "--instance-ids", INSTANCE,
                 "--auto-scaling-group-name", "workers", "--protected-from-scale-in")
        params = self.only_call("SetInstanceProtection")["params"]
        self.assertEqual(params["InstanceIds.member.1"], INSTANCE)
        self.assertEqual(params["AutoScalingGroupName"], "workers")
        self.assertEqual(params["ProtectedFromScaleIn"], "true")
        self.assertTrue(self.state()["instances"][INSTANCE]["protected"])

    def test_describe_auto_scaling_instances(self):
        out = self.cli("autoscaling", "describe-auto-scaling-instances",
                       "--instance-ids", INSTANCE, "i-0aaaaaaaaaaaaaaaa")
        self.assertEqual(len(out["AutoScalingInstances"]), 1)
        inst = out["AutoScalingInstances"][0]
        self.assertEqual(inst["InstanceId"], INSTANCE)
        self.assertEqual(inst["AutoScalingGroupName"], "workers")
        self.assertEqual(inst["LifecycleState"], "InService")
        self.assertEqual(inst["HealthStatus"], "Healthy")
        self.assertEqual(inst["AvailabilityZone"], "us-east-1a")
        self.assertIs(inst["ProtectedFromScaleIn"], False)
        params = self.only_call("DescribeAutoScalingInstances")["params"]
        self.assertEqual(params["InstanceIds.member.1"], INSTANCE)
        self.assertEqual(params["InstanceIds.member.2"], "i-0aaaaaaaaaaaaaaaa")

    def test_complete_lifecycle_action(self):
        out = self.cli("autoscaling", "complete-lifecycle-action", "--lifecycle-hook-name",
                       "drain", "--auto-scaling-group-name", "workers",
                       "--lifecycle-action-result", "CONTINUE", "--instance-id", OTHER_INSTANCE)
        self.assertIsNone(out)
        params = self.only_call("CompleteLifecycleAction")["params"]
        self.assertEqual(params["LifecycleHookName"], "drain")
        self.assertEqual(params["LifecycleActionResult"], "CONTINUE")
        self.assertEqual(params["InstanceId"], OTHER_INSTANCE)
        self.assertEqual(self.state()["instances"][OTHER_INSTANCE]["lifecycle_state"],
                         "Terminating:Proceed")

    def test_record_lifecycle_action_heartbeat(self):
        self.cli("autoscaling", "record-lifecycle-action-heartbeat", "--lifecycle-hook-name",
                 "drain", "--auto-scaling-group-name", "workers",
                 "--lifecycle-action-token", "bcd2f1b8-9a78-44d3-8a7a-4dd07d7cf635")
        params = self.only_call("RecordLifecycleActionHeartbeat")["params"]
        self.assertEqual(params["LifecycleActionToken"], "bcd2f1b8-9a78-44d3-8a7a-4dd07d7cf635")
        self.assertEqual(params["AutoScalingGroupName"], "workers")

    def test_injected_failures_reach_the_cli_as_error_codes(self):
        status, _ = http("POST", self.base + "/_fake/fail", body=json.dumps(
            {"action": "TerminateInstances", "count": 1, "status": 400,
             "code": "UnauthorizedOperation"}))
        self.assertEqual(status, 200)
        code, _, err = aws(self.base, "ec2", "terminate-instances", "--instance-ids", INSTANCE)
        self.assertNotEqual(code, 0)
        self.assertIn("UnauthorizedOperation", err)
        self.assertEqual(self.only_call("TerminateInstances")["error"], "UnauthorizedOperation")
        # count 1: the next call succeeds.
        self.cli("ec2", "terminate-instances", "--instance-ids", INSTANCE)

        http("POST", self.base + "/_fake/fail", body=json.dumps(
            {"action": "SetInstanceProtection", "count": 1, "status": 400,
             "code": "LimitExceeded", "message": "too many"}))
        code, _, err = aws(self.base, "autoscaling", "set-instance-protection", "--instance-ids",
                           INSTANCE, "--auto-scaling-group-name", "workers",
                           "--no-protected-from-scale-in")
        self.assertNotEqual(code, 0)
        self.assertIn("LimitExceeded", err)
        self.assertIn("too many", err)

    def test_auto_scaling_rejects_instance_outside_any_group(self):
        code, _, err = aws(self.base, "autoscaling", "terminate-instance-in-auto-scaling-group",
                           "--instance-id", "i-0bbbbbbbbbbbbbbbb",
                           "--no-should-decrement-desired-capacity")
        self.assertNotEqual(code, 0)
        self.assertIn("ValidationError", err)

    def test_unknown_action_and_missing_parameter_get_error_xml(self):
        status, body = http("POST", self.base + "/", body="Action=RunInstances&Version=2016-11-15",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400)
        self.assertIn("<Code>InvalidAction</Code>", body)
        self.assertIn("<RequestID>", body)
        status, body = http("POST", self.base + "/",
                            body="Action=TerminateInstances&Version=2016-11-15",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400)
        self.assertIn("<Code>MissingParameter</Code>", body)
        status, body = http(
            "POST", self.base + "/",
            body="Action=SetInstanceProtection&Version=2011-01-01&AutoScalingGroupName=workers",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20300101/us-east-1/"
                                      "autoscaling/aws4_request, SignedHeaders=host, "
                                      "Signature=00"})
        self.assertEqual(status, 400)
        self.assertIn("<Code>ValidationError</Code>", body)
        self.assertIn("<ErrorResponse", body)

    def test_calls_are_stamped_with_their_arrival_time_in_order(self):
        before = time.time()
        self.cli("autoscaling", "set-instance-protection", "--instance-ids", INSTANCE,
                 "--auto-scaling-group-name", "workers", "--protected-from-scale-in")
        middle = time.time()
        self.cli("autoscaling", "set-instance-protection", "--instance-ids", INSTANCE,
                 "--auto-scaling-group-name", "workers", "--no-protected-from-scale-in")
        after = time.time()
        calls = self.calls()
        self.assertEqual([c["params"]["ProtectedFromScaleIn"] for c in calls], ["true", "false"])
        self.assertTrue(before <= calls[0]["time"] <= middle, (before, calls, middle))
        self.assertTrue(middle <= calls[1]["time"] <= after, (middle, calls, after))

    def test_tenants_are_isolated(self):
        self.cli("ec2", "terminate-instances", "--instance-ids", INSTANCE)
        other = "%s/%s" % (EMU["SPOTGRID_FAKE_AWS_URL"], unique_tenant("aws-other"))
        self.assertEqual(json.loads(http("GET", other + "/_fake/calls")[1]), [])
        self.assertEqual(http("POST", self.base + "/_fake/reset", body="")[0], 200)
        self.assertEqual(self.calls(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
