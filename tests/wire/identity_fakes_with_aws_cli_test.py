#!/usr/bin/python3
"""Proves the wire format of the STS and IAM Identity Center fakes (tests/harness/sts_fake.py,
sso_fake.py) by driving them with Debian's aws CLI (`--endpoint-url http://127.0.0.1:PORT`):
if the CLI, which parses responses with botocore's models, reads what the fakes answer, so
can spotgrid's providers that the differential test holds to botocore.

Each fake runs as its own process (as the launcher runs the other fakes) on a free port; the
CLI runs with HOME in a temporary directory, static test keys and IMDS disabled.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness")
AWS = "/usr/bin/aws"


def start_fake(script, state_dir):
    port_file = os.path.join(state_dir, script + ".port")
    log = open(os.path.join(state_dir, script + ".log"), "w")
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HARNESS, script), "--port", "0",
                             "--port-file", port_file], stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("%s did not start" % script)
        time.sleep(0.05)  # polling for the port file with a deadline, not synchronising
    with open(port_file) as f:
        return proc, "http://127.0.0.1:%d" % int(f.read())


class IdentityFakesWithAwsCliTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="identity-fakes-")
        cls.sts_proc, cls.sts = start_fake("sts_fake.py", cls.dir.name)
        cls.sso_proc, cls.sso = start_fake("sso_fake.py", cls.dir.name)

    @classmethod
    def tearDownClass(cls):
        for proc in (cls.sts_proc, cls.sso_proc):
            proc.terminate()
            proc.wait(timeout=10)
        cls.dir.cleanup()

    def aws(self, endpoint, *args, expect_ok=True):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.dir.name, "AWS_ACCESS_KEY_ID": "AKIACLI",
               "AWS_SECRET_ACCESS_KEY": "cli-secret", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""}
        proc = subprocess.run([AWS, "--endpoint-url", endpoint, "--output", "json"] + list(args),
                              env=env, capture_output=True, text=True, timeout=60)
        if expect_ok:
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return json.loads(proc.stdout)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        return proc.stderr

    def control(self, base, tenant, method, what, doc=None):
        data = json.dumps(doc).encode() if doc is not None else None
        request = urllib.request.Request("%s/%s/_fake/%s" % (base, tenant, what), data=data,
                                         method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def test_assume_role_returns_credentials_and_records_the_signed_caller(self):
        out = self.aws(self.sts + "/t-ar", "sts", "assume-role", "--role-arn",
                       "arn:aws:iam::123456789012:role/demo", "--role-session-name", "s1",
                       "--external-id", "ext", "--duration-seconds", "900")
        creds = out["Credentials"]
        self.assertTrue(creds["AccessKeyId"].startswith("ASIA"))
        self.assertTrue(creds["SessionToken"])
        self.assertIn("Expiration", creds)
        self.assertEqual(out["AssumedRoleUser"]["Arn"],
                         "arn:aws:sts::123456789012:assumed-role/demo/s1")
        calls = self.control(self.sts, "t-ar", "GET", "calls")
        self.assertEqual(calls[0]["caller"], "AKIACLI")
        self.assertEqual(calls[0]["params"]["ExternalId"], "ext")
        self.assertEqual(calls[0]["params"]["DurationSeconds"], "900")

    def test_assume_role_with_web_identity_is_unsigned_and_rejects_listed_tokens(self):
        out = self.aws(self.sts + "/t-web", "sts", "assume-role-with-web-identity",
                       "--role-arn", "arn:aws:iam::123456789012:role/irsa",
                       "--role-session-name", "pod", "--web-identity-token", "jwt-1")
        self.assertTrue(out["Credentials"]["AccessKeyId"].startswith("ASIA"))
        self.assertEqual(out["Provider"], "oidc.fake.example")
        self.assertIsNone(self.control(self.sts, "t-web", "GET", "calls")[0]["caller"])
        self.control(self.sts, "t-web", "PUT", "state", {"rejected_tokens": ["jwt-2"]})
        err = self.aws(self.sts + "/t-web", "sts", "assume-role-with-web-identity",
                       "--role-arn", "arn:aws:iam::123456789012:role/irsa",
                       "--role-session-name", "pod", "--web-identity-token", "jwt-2",
                       expect_ok=False)
        self.assertIn("InvalidIdentityToken", err)

    def test_get_caller_identity_and_injected_failure_with_request_id(self):
        out = self.aws(self.sts + "/t-gci", "sts", "get-caller-identity")
        self.assertEqual(out["Account"], "123456789012")
        self.assertEqual(out["UserId"], "AKIACLI")
        self.control(self.sts, "t-gci", "POST", "fail",
                     {"action": "GetCallerIdentity", "count": 5, "status": 403,
                      "code": "AccessDenied", "message": "nope"})
        err = self.aws(self.sts + "/t-gci", "sts", "get-caller-identity", expect_ok=False)
        self.assertIn("AccessDenied", err)

    def test_configurable_expiration(self):
        self.control(self.sts, "t-exp", "PUT", "state", {"expiration": "2031-02-03T04:05:06Z"})
        out = self.aws(self.sts + "/t-exp", "sts", "assume-role", "--role-arn",
                       "arn:aws:iam::123456789012:role/demo", "--role-session-name", "s2")
        self.assertTrue(out["Credentials"]["Expiration"].startswith("2031-02-03T04:05:06"))

    def test_sso_get_role_credentials_accepts_known_tokens_only(self):
        self.control(self.sso, "t-sso", "PUT", "state", {"access_tokens": {"good": None}})
        out = self.aws(self.sso + "/t-sso", "sso", "get-role-credentials", "--role-name", "R",
                       "--account-id", "111122223333", "--access-token", "good",
                       "--region", "eu-west-1")
        creds = out["roleCredentials"]
        self.assertTrue(creds["accessKeyId"].startswith("ASIA"))
        self.assertIsInstance(creds["expiration"], int)
        err = self.aws(self.sso + "/t-sso", "sso", "get-role-credentials", "--role-name", "R",
                       "--account-id", "111122223333", "--access-token", "bad",
                       "--region", "eu-west-1", expect_ok=False)
        self.assertIn("UnauthorizedException", err)

    def test_sso_oidc_create_token_refreshes_and_the_new_token_works(self):
        self.control(self.sso, "t-oidc", "PUT", "state", {"refresh_tokens": {"rt-1": "c1"}})
        out = self.aws(self.sso + "/t-oidc", "sso-oidc", "create-token", "--client-id", "c1",
                       "--client-secret", "secret", "--grant-type", "refresh_token",
                       "--refresh-token", "rt-1", "--region", "eu-west-1")
        self.assertEqual(out["tokenType"], "Bearer")
        self.assertEqual(out["expiresIn"], 28800)
        self.assertNotEqual(out["refreshToken"], "rt-1")
        self.aws(self.sso + "/t-oidc", "sso", "get-role-credentials", "--role-name", "R",
                 "--account-id", "1", "--access-token", out["accessToken"],
                 "--region", "eu-west-1")
        # A refresh token is good once.
        err = self.aws(self.sso + "/t-oidc", "sso-oidc", "create-token", "--client-id", "c1",
                       "--client-secret", "secret", "--grant-type", "refresh_token",
                       "--refresh-token", "rt-1", "--region", "eu-west-1", expect_ok=False)
        self.assertIn("InvalidGrantException", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
