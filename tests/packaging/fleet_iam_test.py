#!/usr/bin/python3
"""deploy/fleet.yaml and deploy/iam/*.json: the fleet is what the issue asks for, and the
policies grant no wildcard that is not justified in deploy/iam/justifications.json.

The template is parsed with a YAML loader that turns CloudFormation's short tags (!Ref, !Sub,
!GetAtt, ...) into their long forms ({"Ref": ...}, {"Fn::Sub": ...}); nothing contacts AWS.
"""

import json
import re
import unittest

import yaml

import packaging_support as ps

TEMPLATE = ps.source("deploy", "fleet.yaml")
IAM_DIR = ps.source("deploy", "iam")
POLICIES = ("agent-policy.json", "controller-policy.json")


class CloudFormationLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CloudFormationLoader.add_multi_constructor("!", _tag)


def load_template():
    with open(TEMPLATE, encoding="utf-8") as f:
        return yaml.load(f, Loader=CloudFormationLoader)


def load_json(name):
    with open(ps.source("deploy", "iam", name), encoding="utf-8") as f:
        return json.load(f)


def unsub(value):
    """The template's policy with each {"Fn::Sub": "text"} replaced by its text, which is how
    deploy/iam/*.json spell it."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"]
        return {k: unsub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsub(v) for v in value]
    return value


def as_list(value):
    return value if isinstance(value, list) else [value]


def unjustified_wildcards(policy, justifications):
    """Every (Sid, field, value) whose Action or Resource holds a '*' not in justifications."""
    found = []
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "")
        for field in ("Action", "NotAction", "Resource", "NotResource"):
            for value in as_list(statement.get(field, [])):
                if "*" in value and value not in justifications.get(sid, {}):
                    found.append((sid, field, value))
    return found


class FleetTemplateTest(unittest.TestCase):

    def setUp(self):
        self.t = load_template()
        self.resources = self.t["Resources"]

    def of_type(self, kind):
        found = [r for r in self.resources.values() if r["Type"] == kind]
        self.assertTrue(found, kind)
        return found

    def test_LaunchTemplateRequiresImdsV2AndTakesTheAmiAsAParameter(self):
        [lt] = self.of_type("AWS::EC2::LaunchTemplate")
        data = lt["Properties"]["LaunchTemplateData"]
        self.assertEqual(data["MetadataOptions"]["HttpTokens"], "required")
        self.assertEqual(data["MetadataOptions"]["HttpEndpoint"], "enabled")
        self.assertEqual(data["ImageId"], {"Ref": "AmiId"})
        self.assertEqual(self.t["Parameters"]["AmiId"]["Type"], "AWS::EC2::Image::Id")
        profile = data["IamInstanceProfile"]["Arn"]["Fn::GetAtt"][0]
        self.assertEqual(self.resources[profile]["Type"], "AWS::IAM::InstanceProfile")

    def test_GroupIsSpotOnlyPriceCapacityOptimizedOverSeveralTypes(self):
        [asg] = self.of_type("AWS::AutoScaling::AutoScalingGroup")
        props = asg["Properties"]
        self.assertEqual(str(props["MinSize"]), "0")
        self.assertIs(props["CapacityRebalance"], True)
        mixed = props["MixedInstancesPolicy"]
        dist = mixed["InstancesDistribution"]
        self.assertEqual(dist["SpotAllocationStrategy"], "price-capacity-optimized")
        self.assertEqual(dist["OnDemandBaseCapacity"], 0)
        self.assertEqual(dist["OnDemandPercentageAboveBaseCapacity"], 0)
        types = [o["InstanceType"] for o in mixed["LaunchTemplate"]["Overrides"]]
        self.assertGreaterEqual(len(types), 3)
        defaults = {self.t["Parameters"][t["Ref"]]["Default"] for t in types}
        self.assertEqual(len(defaults), len(types))  # distinct types by default

    def test_ScalesOnTheQueueBacklogPerInstanceAndWakesFromZero(self):
        policies = self.of_type("AWS::AutoScaling::ScalingPolicy")
        tracking = [p for p in policies if p["Properties"]["PolicyType"] == "TargetTrackingScaling"]
        self.assertEqual(len(tracking), 1)
        spec = tracking[0]["Properties"]["TargetTrackingConfiguration"]
        metrics = {m["Id"]: m for m in spec["CustomizedMetricSpecification"]["Metrics"]}
        names = {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values()
                 if "MetricStat" in m}
        self.assertIn("ApproximateNumberOfMessagesVisible", names)
        self.assertIn("GroupInServiceInstances", names)
        returned = [m for m in metrics.values() if m.get("ReturnData")]
        self.assertEqual(len(returned), 1)
        self.assertRegex(returned[0]["Expression"], r"/\s*workers$")
        queue = [m for m in metrics.values() if "MetricStat" in m and
                 m["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS"]
        for m in queue:
            dims = m["MetricStat"]["Metric"]["Dimensions"]
            self.assertEqual(dims, [{"Name": "QueueName", "Value": {"Fn::Sub": "spotgrid-${SpotgridStack}"}}])
        [asg] = self.of_type("AWS::AutoScaling::AutoScalingGroup")
        collected = asg["Properties"]["MetricsCollection"][0]["Metrics"]
        self.assertIn("GroupInServiceInstances", collected)
        alarms = self.of_type("AWS::CloudWatch::Alarm")
        self.assertTrue(any(a["Properties"]["AlarmActions"] for a in alarms))

    def test_TerminationHookNameReachesTheAgent(self):
        [asg] = self.of_type("AWS::AutoScaling::AutoScalingGroup")
        hooks = asg["Properties"]["LifecycleHookSpecificationList"]
        terminating = [h for h in hooks
                       if h["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"]
        self.assertEqual(len(terminating), 1)
        self.assertEqual(terminating[0]["DefaultResult"], "CONTINUE")
        header = self.user_data_parts()[0]
        self.assertIn("lifecycle_hook='%s'\n" % terminating[0]["LifecycleHookName"], header)
        group_name = asg["Properties"]["AutoScalingGroupName"]["Fn::Sub"]
        self.assertIn("asg_name='%s'\n" % group_name, header)

    def user_data_parts(self):
        [lt] = self.of_type("AWS::EC2::LaunchTemplate")
        user_data = lt["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
        sep, parts = user_data["Fn::Join"]
        self.assertEqual(sep, "")
        return [parts[0]["Fn::Sub"], parts[1]]

    def test_UserDataBodyIsTheControllersAndAllSubstitutionsAreParameters(self):
        header, body = self.user_data_parts()
        with open(ps.source("controller", "verbs", "userdata.cc"), encoding="utf-8") as f:
            source = f.read()
        controller_body = re.search(r'R"BODY\((.*?)\)BODY"', source, re.S).group(1)
        self.assertEqual(body.lstrip("\n"), controller_body.lstrip("\n"))
        self.assertTrue(header.rstrip("\n").endswith("# --- end of settings ---"))
        params = set(self.t["Parameters"])
        for name in re.findall(r"\$\{([^}!]+)\}", header):
            self.assertTrue(name in params or name.startswith("AWS::"), name)

    def test_PoliciesInTheTemplateAreTheJsonFiles(self):
        role = [r for r in self.of_type("AWS::IAM::Role")][0]
        inline = role["Properties"]["Policies"][0]["PolicyDocument"]
        self.assertEqual(unsub(inline), load_json("agent-policy.json"))
        [managed] = self.of_type("AWS::IAM::ManagedPolicy")
        self.assertEqual(unsub(managed["Properties"]["PolicyDocument"]),
                         load_json("controller-policy.json"))

    def test_PolicyPlaceholdersAreParametersOrPseudoParameters(self):
        params = set(self.t["Parameters"])
        for name in POLICIES:
            text = json.dumps(load_json(name))
            for placeholder in re.findall(r"\$\{([^}]+)\}", text):
                self.assertTrue(placeholder in params or placeholder.startswith("AWS::"),
                                (name, placeholder))


class IamPolicyTest(unittest.TestCase):

    def setUp(self):
        self.justifications = load_json("justifications.json")

    def test_NoUnjustifiedWildcard(self):
        for name in POLICIES:
            found = unjustified_wildcards(load_json(name), self.justifications.get(name, {}))
            self.assertEqual(found, [], name)

    def test_CheckCatchesEveryKindOfWildcard(self):
        base = {"Sid": "X", "Effect": "Allow"}
        for statement in ({"Action": "sqs:*", "Resource": "arn:aws:sqs:r:1:q"},
                          {"Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"},
                          {"Action": "ec2:DescribeSpotPriceHistory", "Resource": "*"},
                          {"Action": "*", "Resource": "arn:aws:sqs:r:1:q"}):
            policy = {"Statement": [dict(base, **statement)]}
            self.assertTrue(unjustified_wildcards(policy, {}), statement)
            self.assertFalse(unjustified_wildcards(policy, {"X": {
                v: "why" for v in as_list(statement["Action"]) + as_list(statement["Resource"])
                if "*" in v}}), statement)

    def test_EveryJustificationIsUsedAndSaysWhy(self):
        for name in POLICIES:
            policy = load_json(name)
            wildcards = {(s.get("Sid"), v) for s in policy["Statement"]
                         for f in ("Action", "Resource") for v in as_list(s.get(f, []))
                         if "*" in v}
            entries = {(sid, v) for sid, m in self.justifications.get(name, {}).items()
                       for v in m}
            self.assertEqual(entries - wildcards, set(), name)  # stale justifications
            for sid, values in self.justifications.get(name, {}).items():
                for value, why in values.items():
                    self.assertGreater(len(why.split()), 5, (name, sid, value))

    def test_AgentGetsOnlyWhatTheAgentCalls(self):
        actions = {a for s in load_json("agent-policy.json")["Statement"]
                   for a in as_list(s["Action"])}
        self.assertEqual(actions, {
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            # A requeue's fresh message and the sweeper's resends (SendMessageBatch).
            "sqs:SendMessage",
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
            # The sweeper reads the by_state index (active jobs, RUNNING and QUEUED units).
            "dynamodb:Query",
            "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
            "s3:ListBucket",
            "autoscaling:SetInstanceProtection", "autoscaling:RecordLifecycleActionHeartbeat",
            "autoscaling:CompleteLifecycleAction",
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            "autoscaling:DescribeAutoScalingInstances", "ec2:TerminateInstances"})
        for statement in load_json("agent-policy.json")["Statement"]:
            self.assertEqual(statement["Effect"], "Allow")
            self.assertNotIn("dynamodb:Scan", as_list(statement["Action"]))
            if "dynamodb:Query" in as_list(statement["Action"]):
                # Only the state index: the agent never queries a job's partition wholesale.
                for resource in as_list(statement["Resource"]):
                    self.assertTrue(resource.endswith("/index/by_state"), resource)

    def test_ScopedToTheStacksResources(self):
        for name in POLICIES:
            for statement in load_json(name)["Statement"]:
                for resource in as_list(statement["Resource"]):
                    if resource == "*":
                        continue
                    self.assertTrue("${SpotgridStack}" in resource or "${BucketName}" in resource
                                    or statement.get("Condition"), (name, resource))
        listing = [s for s in load_json("agent-policy.json")["Statement"]
                   if s["Action"] == "s3:ListBucket"][0]
        self.assertEqual(listing["Condition"]["StringLike"]["s3:prefix"], "${KeyPrefix}*")


if __name__ == "__main__":
    unittest.main(verbosity=2)
