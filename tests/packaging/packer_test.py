#!/usr/bin/python3
"""packer/spotgrid-agent.pkr.hcl: Debian's Packer accepts it with the variables given, it is
formatted, and it does what the image needs. Offline: `packer validate` does not call AWS
(no credentials are given, and any proxy-able request would go to a closed port)."""

import os
import re
import shutil
import tempfile
import unittest

import packaging_support as ps

PACKER_DIR = ps.source("packer")
TEMPLATE = os.path.join(PACKER_DIR, "spotgrid-agent.pkr.hcl")


def packer(*args):
    env = {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir(), "CHECKPOINT_DISABLE": "1",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    return ps.run(["/usr/bin/packer"] + list(args), check=False, cwd=PACKER_DIR, env=env)


class PackerTemplateTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="spotgrid-packer-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.deb = os.path.join(self.tmp, "spotgrid_0.1.0_amd64.deb")
        with open(self.deb, "wb") as f:
            f.write(b"!<arch>\n")
        with open(TEMPLATE, encoding="utf-8") as f:
            self.text = f.read()

    def validate(self, *variables):
        args = ["validate"]
        for v in variables:
            args += ["-var", v]
        return packer(*(args + [TEMPLATE]))

    def test_ValidatesWithTheVariablesGiven(self):
        script = os.path.join(self.tmp, "install.sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write("#!/bin/sh\ntrue\n")
        for extra in ([], ["provision_script=" + script, "instance_type=c6i.large",
                           "base_ami_name=debian-12-amd64-*", "base_ami_owner=136693071363",
                           "ssh_username=admin"]):
            done = self.validate("region=eu-west-1", "deb=" + self.deb, *extra)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_ValidationFailsWithoutARegionOrWithAMissingScript(self):
        self.assertNotEqual(self.validate("deb=" + self.deb).returncode, 0)
        done = self.validate("region=eu-west-1", "deb=" + self.deb,
                             "provision_script=" + os.path.join(self.tmp, "missing.sh"))
        self.assertNotEqual(done.returncode, 0)

    def test_IsFormatted(self):
        done = packer("fmt", "-check", "-diff", TEMPLATE)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_InstallsThePackageAndEnablesWithoutStarting(self):
        self.assertRegex(self.text, r"apt-get install[^\n]*/tmp/spotgrid\.deb")
        self.assertIn("systemctl enable spotgrid-agent.service", self.text)
        self.assertNotRegex(self.text, r"systemctl (start|restart|enable --now)")
        self.assertRegex(self.text, r"ubuntu-noble-24\.04")  # a current Ubuntu LTS
        for variable in ("region", "instance_type", "base_ami_name", "provision_script"):
            self.assertRegex(self.text, r'(?m)^variable "%s"' % variable)

    def test_ExampleProvisioningHookIsShellcheckClean(self):
        hook = os.path.join(PACKER_DIR, "provision.sh")
        self.assertTrue(os.access(hook, os.X_OK))
        done = ps.run(["shellcheck", hook], check=False)
        self.assertEqual(done.returncode, 0, done.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
