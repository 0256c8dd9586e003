#!/usr/bin/python3
"""Proves the wire format of the Secrets Manager and SSM Parameter Store fake
(tests/harness/secrets_fake.py) by driving it with Debian's aws CLI (`--endpoint-url`): what
the CLI, which reads responses with botocore's models, understands, so can the agent's clients.

The fake runs as its own process on a free port; the CLI runs with HOME in a temporary
directory, static test keys and IMDS disabled.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from identity_fakes_with_aws_cli_test import AWS, start_fake  # noqa: E402


class SecretsFakeWithAwsCliTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="secrets-fake-")
        cls.proc, cls.base = start_fake("secrets_fake.py", cls.dir.name)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)
        cls.dir.cleanup()

    def aws(self, tenant, *args, expect_ok=True):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.dir.name, "AWS_ACCESS_KEY_ID": "AKIAAGENT",
               "AWS_SECRET_ACCESS_KEY": "agent-secret", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""}
        proc = subprocess.run([AWS, "--endpoint-url", "%s/%s" % (self.base, tenant), "--output",
                               "json"] + list(args), env=env, capture_output=True, text=True,
                              timeout=60)
        if expect_ok:
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return json.loads(proc.stdout)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        return proc.stderr

    def control(self, tenant, method, what, doc=None):
        data = json.dumps(doc).encode() if doc is not None else None
        request = urllib.request.Request("%s/%s/_fake/%s" % (self.base, tenant, what), data=data,
                                         method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def test_get_secret_value_by_name_and_by_arn_and_records_no_value(self):
        self.control("t-sm", "PUT", "state", {"secrets": {"gemini-key": "s3cr3t value"}})
        out = self.aws("t-sm", "secretsmanager", "get-secret-value", "--secret-id", "gemini-key")
        self.assertEqual(out["SecretString"], "s3cr3t value")
        self.assertEqual(out["Name"], "gemini-key")
        by_arn = self.aws("t-sm", "secretsmanager", "get-secret-value", "--secret-id", out["ARN"])
        self.assertEqual(by_arn["SecretString"], "s3cr3t value")
        calls = self.control("t-sm", "GET", "calls")
        self.assertEqual([c["caller"] for c in calls], ["AKIAAGENT", "AKIAAGENT"])
        self.assertNotIn("s3cr3t", json.dumps(calls))

    def test_missing_and_denied_secrets_are_the_errors_aws_returns(self):
        self.control("t-sm-err", "PUT", "state", {"secrets": {"a": "1"}, "denied": ["a"]})
        err = self.aws("t-sm-err", "secretsmanager", "get-secret-value", "--secret-id", "nope",
                       expect_ok=False)
        self.assertIn("ResourceNotFoundException", err)
        err = self.aws("t-sm-err", "secretsmanager", "get-secret-value", "--secret-id", "a",
                       expect_ok=False)
        self.assertIn("AccessDeniedException", err)

    def test_get_parameter_decrypts_only_when_asked(self):
        self.control("t-ssm", "PUT", "state", {"parameters": {
            "/sweep/licence": {"value": "GRB-123", "type": "SecureString"},
            "/sweep/plain": {"value": "hello"}}})
        out = self.aws("t-ssm", "ssm", "get-parameter", "--name", "/sweep/licence",
                       "--with-decryption")
        self.assertEqual(out["Parameter"]["Value"], "GRB-123")
        self.assertEqual(out["Parameter"]["Type"], "SecureString")
        hidden = self.aws("t-ssm", "ssm", "get-parameter", "--name", "/sweep/licence")
        self.assertNotEqual(hidden["Parameter"]["Value"], "GRB-123")
        plain = self.aws("t-ssm", "ssm", "get-parameter", "--name", "/sweep/plain")
        self.assertEqual(plain["Parameter"]["Value"], "hello")
        err = self.aws("t-ssm", "ssm", "get-parameter", "--name", "/nope", expect_ok=False)
        self.assertIn("ParameterNotFound", err)

    def test_injected_failure_reaches_the_client(self):
        self.control("t-fail", "PUT", "state", {"secrets": {"a": "1"}})
        self.control("t-fail", "POST", "fail", {"action": "GetSecretValue", "count": 10,
                                                "status": 400, "code": "ThrottlingException",
                                                "message": "slow down"})
        err = self.aws("t-fail", "secretsmanager", "get-secret-value", "--secret-id", "a",
                       expect_ok=False)
        self.assertIn("ThrottlingException", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
