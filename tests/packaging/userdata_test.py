#!/usr/bin/python3
"""`controller userdata`: a shellcheck-clean script that writes the agent's environment file;
run with SPOTGRID_ROOT it writes under that root and leaves systemd alone, and every value
reads back exactly as given, however it needs quoting. The fleet template's user data (the
same body under settings from its parameters) is run the same way.

Runs under the `emulators` ctest fixture: `controller userdata` reads the stack's region from
its ledger, so each test first runs `controller init` on a stack of its own.
"""

import os
import random
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import packaging_support as ps
from fleet_iam_test import load_template

# Characters that are special to the shell, to systemd's EnvironmentFile= or to both; AWS
# allows all of them in group and hook names.
ODD_GROUP = "grid's\"$(touch${IFS}/tmp/spotgrid-pwned)`id`\\n;#*"
ODD_HOOK = "hook$HOME'\"\\"


def emulator_env():
    path = os.environ.get("SPOTGRID_TEST_ENV_FILE")
    if not path:
        raise RuntimeError("SPOTGRID_TEST_ENV_FILE is not set: run through ctest (emulators "
                           "fixture) or tests/harness/launcher.py run -- /usr/bin/python3 "
                           + __file__)
    env = {"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()}
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value
    return env


class UserdataTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.env = emulator_env()
        cls.controller = ps.built_program("controller")
        suffix = "%d-%04x" % (os.getpid(), random.randrange(0x10000))
        cls.stack = "ud-" + suffix
        cls.bucket = "spotgrid-ud-" + suffix
        cls.run_controller("init", "--stack", cls.stack, "--bucket", cls.bucket)

    @classmethod
    def run_controller(cls, *args, check=True):
        return ps.run([cls.controller] + list(args), check=check, env=cls.env)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="spotgrid-userdata-")
        self.addCleanup(shutil.rmtree, self.tmp)
        # Stubs that record a call: systemd must be left alone under SPOTGRID_ROOT.
        self.stub_bin = os.path.join(self.tmp, "bin")
        os.makedirs(self.stub_bin)
        self.calls = os.path.join(self.tmp, "calls.log")
        for name, output in (("systemctl", ""), ("nproc", "7")):
            path = os.path.join(self.stub_bin, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write('#!/bin/sh\necho "%s $*" >>"%s"\n%s\n' %
                        (name, self.calls, "echo " + output if output else "exit 0"))
            os.chmod(path, 0o755)

    def shellcheck(self, script):
        done = subprocess.run(["shellcheck", "-"], input=script, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(done.returncode, 0, done.stdout)

    def run_in_root(self, script):
        """Runs the script under SPOTGRID_ROOT; returns (env file text, its parsed values)."""
        root = os.path.join(self.tmp, "root")
        os.makedirs(root, exist_ok=True)
        path = os.path.join(self.tmp, "user-data.sh")
        with open(path, "w", encoding="utf-8") as f:
            f.write(script)
        env = {"PATH": self.stub_bin + ":/usr/bin:/bin", "SPOTGRID_ROOT": root}
        done = subprocess.run(["/bin/bash", path], env=env, text=True, cwd=self.tmp,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(done.returncode, 0, done.stdout)
        called = ""
        if os.path.exists(self.calls):
            with open(self.calls, encoding="utf-8") as f:
                called = f.read()
        self.assertNotIn("systemctl", called)
        env_dir = os.path.join(root, "etc", "spotgrid")
        self.assertEqual(os.listdir(env_dir), ["agent.env"])  # no temporary file left
        env_file = os.path.join(env_dir, "agent.env")
        self.assertEqual(stat.S_IMODE(os.stat(env_file).st_mode), 0o644)
        self.assertFalse(os.path.exists("/tmp/spotgrid-pwned"))
        with open(env_file, encoding="utf-8") as f:
            text = f.read()
        values = ps.parse_env_file(text)
        # bash reads the same double-quoted values the same way.
        dump = subprocess.run(
            ["/bin/bash", "-c", 'set -a; . "$1"; for k in "${!SPOTGRID_@}" AWS_REGION; do '
             'printf "%s=%s\\0" "$k" "${!k}"; done', "dump", env_file],
            env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, check=True).stdout
        from_bash = dict(e.decode().split("=", 1) for e in dump.split(b"\0") if e)
        self.assertEqual(from_bash, values)
        return text, values

    def test_ScriptIsShellcheckCleanAndWritesEveryValueSoItReadsBack(self):
        done = self.run_controller(
            "userdata", "--stack", self.stack, "--slots", "3", "--asg-name", ODD_GROUP,
            "--lifecycle-hook", ODD_HOOK, "--idle-shutdown", "15m", "--rebalance", "checkpoint")
        script = done.stdout
        self.assertTrue(script.startswith("#!/bin/bash\n"))
        self.shellcheck(script)
        _, values = self.run_in_root(script)
        self.assertEqual(values, {
            "SPOTGRID_STACK": self.stack,
            "AWS_REGION": "us-east-1",
            "SPOTGRID_SLOTS": "3",
            "SPOTGRID_ASG_NAME": ODD_GROUP,
            "SPOTGRID_LIFECYCLE_HOOK": ODD_HOOK,
            "SPOTGRID_IDLE_SHUTDOWN": "15m",
            "SPOTGRID_REBALANCE": "checkpoint",
        })

    def test_DefaultsToOneSlotPerVcpuAndLeavesTheGroupToTheAgent(self):
        script = self.run_controller("userdata", "--stack", self.stack).stdout
        self.shellcheck(script)
        _, values = self.run_in_root(script)
        self.assertEqual(values["SPOTGRID_SLOTS"], "7")  # the nproc stub
        self.assertNotIn("SPOTGRID_ASG_NAME", values)
        self.assertNotIn("SPOTGRID_LIFECYCLE_HOOK", values)

    def test_WithoutARootItWaitsForTheNetworkAndStartsTheService(self):
        script = self.run_controller("userdata", "--stack", self.stack).stdout
        body = script.split("# --- end of settings ---\n", 1)[1]
        self.assertIn("network-online.target", body)
        self.assertRegex(body, r"(?m)^systemctl enable --now spotgrid-agent\.service --no-block$")
        self.assertIn('"${root}/etc/spotgrid/agent.env"', body)

    def test_RefusesValuesTheAgentWouldRefuse(self):
        for args in (("--asg-name", "two words"), ("--lifecycle-hook", "tab\there"),
                     ("--slots", "0"), ("--idle-shutdown", "")):
            done = self.run_controller("userdata", "--stack", self.stack, *args, check=False)
            self.assertEqual(done.returncode, 2, (args, done.stderr))

    def test_FleetTemplateUserDataRunsAndNamesTheGroupAndHook(self):
        template = load_template()
        data = template["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
        header, body = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
        params = {"SpotgridStack": self.stack, "AWS::Region": "eu-west-1", "Slots": "",
                  "IdleShutdown": "10m", "Rebalance": "stop-taking"}
        script = re.sub(r"\$\{([^}]+)\}", lambda m: params[m.group(1)], header["Fn::Sub"]) + body
        self.shellcheck(script)
        _, values = self.run_in_root(script)
        self.assertEqual(values, {
            "SPOTGRID_STACK": self.stack, "AWS_REGION": "eu-west-1", "SPOTGRID_SLOTS": "7",
            "SPOTGRID_ASG_NAME": "spotgrid-" + self.stack,
            "SPOTGRID_LIFECYCLE_HOOK": "spotgrid-drain",
            "SPOTGRID_IDLE_SHUTDOWN": "10m", "SPOTGRID_REBALANCE": "stop-taking"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
