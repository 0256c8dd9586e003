#!/usr/bin/python3
"""A fake of the EC2 and Auto Scaling Query APIs for tests.

Usage: aws_fake.py --port 0 --port-file FILE

Requests are `POST <tenant-prefix>/` with a form body (GET with a query string works too), the
way SDKs send EC2 (`Version=2016-11-15`) and Auto Scaling (`Version=2011-01-01`) calls. The
service is taken from the SigV4 credential scope in Authorization (`.../ec2/aws4_request` or
`.../autoscaling/aws4_request`), or from the action when the request is unsigned. Responses use
the XML shapes of the real services (botocore's models), with request ids, so the aws CLI and
our own clients parse them as they would parse AWS.

Supported actions: EC2 TerminateInstances, CreateTags, DescribeSpotPriceHistory; Auto Scaling
TerminateInstanceInAutoScalingGroup, SetInstanceProtection, DescribeAutoScalingInstances,
CompleteLifecycleAction, RecordLifecycleActionHeartbeat. Unknown action -> InvalidAction;
missing required parameter -> MissingParameter (EC2) / ValidationError (Auto Scaling).

State, per tenant (the path prefix; none = default tenant):
  instances: id -> {group, lifecycle_state ("InService"), protected (false), health_status
             ("Healthy"), availability_zone ("us-east-1a"), instance_type ("c5.large"),
             launch_template ("spotgrid-worker"), state ("running"), tags {}}
             EC2 calls treat an unknown well-formed id as a running instance (EC2 instances exist
             without a group); Auto Scaling calls require the instance to be in a group
             (ValidationError otherwise), as AWS does.
  spot_prices: [{instance_type, availability_zone, price, product_description ("Linux/UNIX"),
             timestamp (ISO 8601, default now)}]
Control (under the tenant prefix):
  GET  /_fake/calls  JSON list of {service, action, params, time[, error]} (params without
                     Action; time = when the call arrived, Unix seconds with a fraction, so a
                     test can order calls against timestamps its other processes wrote)
  GET  /_fake/state  the tenant's state as JSON
  PUT  /_fake/state  JSON merged into the state (instances merged per id, spot_prices replaced)
  POST /_fake/fail   {"action": "X"|"*", "count": N, "status": 503, "code": "...", "message": ..}
                     the next N calls of X answer that error (and are still recorded)
  POST /_fake/reset  empty state, calls and failure rules
"""

import copy
import datetime
import os
import re
import sys
import time
import uuid
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_common  # noqa: E402

EC2 = "ec2"
AUTOSCALING = "autoscaling"
NAMESPACES = {
    EC2: "http://ec2.amazonaws.com/doc/2016-11-15/",
    AUTOSCALING: "http://autoscaling.amazonaws.com/doc/2011-01-01/",
}
EC2_ACTIONS = {"TerminateInstances", "CreateTags", "DescribeSpotPriceHistory"}
AUTOSCALING_ACTIONS = {
    "TerminateInstanceInAutoScalingGroup", "SetInstanceProtection",
    "DescribeAutoScalingInstances", "CompleteLifecycleAction", "RecordLifecycleActionHeartbeat",
}
INSTANCE_ID_RE = re.compile(r"^i-[0-9a-f]{8}([0-9a-f]{9})?$")
EC2_STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
                   "stopping": 64, "stopped": 80}
INSTANCE_DEFAULTS = {
    "group": None,
    "lifecycle_state": "InService",
    "protected": False,
    "health_status": "Healthy",
    "availability_zone": "us-east-1a",
    "instance_type": "c5.large",
    "launch_template": "spotgrid-worker",
    "state": "running",
    "tags": {},
}


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


ApiError = harness_common.ApiError


def _missing(service, name):
    if service == EC2:
        return ApiError(400, "MissingParameter",
                        "The request must contain the parameter %s" % name)
    return ApiError(400, "ValidationError",
                    "1 validation error detected: Value null at '%s' failed to satisfy "
                    "constraint: Member must not be null" % (name[:1].lower() + name[1:]))


def _list_param(params, prefix):
    """Values of prefix.1, prefix.2, ... in index order (EC2: `X.N`, query: `X.member.N`)."""
    found = []
    pattern = re.compile(r"^%s\.(\d+)$" % re.escape(prefix))
    for key, value in params.items():
        m = pattern.match(key)
        if m:
            found.append((int(m.group(1)), value))
    return [v for _, v in sorted(found)]


def _bool_param(service, params, name):
    value = params.get(name)
    if value is None:
        raise _missing(service, name)
    if value not in ("true", "false"):
        code = "ValidationError" if service == AUTOSCALING else "InvalidParameterValue"
        raise ApiError(400, code, "Invalid boolean value for %s: %s" % (name, value))
    return value == "true"


class Tenant(harness_common.FakeTenant):
    fail_rule_needs_action = True

    def reset_state(self):
        self.instances = {}
        self.spot_prices = []
        self.heartbeats = {}

    def state_doc(self):
        return {"instances": copy.deepcopy(self.instances),
                "spot_prices": copy.deepcopy(self.spot_prices),
                "heartbeats": dict(self.heartbeats)}

    def merge_state(self, doc):
        for iid, fields in (doc.get("instances") or {}).items():
            inst = self.instances.setdefault(iid, copy.deepcopy(INSTANCE_DEFAULTS))
            inst.update(fields or {})
        if "spot_prices" in doc:
            self.spot_prices = list(doc["spot_prices"] or [])

    def ec2_instance(self, iid):
        if not INSTANCE_ID_RE.match(iid):
            raise ApiError(400, "InvalidInstanceID.Malformed",
                           'Invalid id: "%s"' % iid)
        return self.instances.setdefault(iid, copy.deepcopy(INSTANCE_DEFAULTS))

    def asg_instance(self, iid):
        inst = self.instances.get(iid)
        if inst is None or not inst.get("group"):
            raise ApiError(400, "ValidationError",
                           "Instance Id not found - No managed instance found for instance "
                           "ID: %s" % iid)
        return inst



# ---- EC2 actions: return the XML inside <ActionResponse> after <requestId>.

def terminate_instances(tenant, params):
    ids = _list_param(params, "InstanceId")
    if not ids:
        raise _missing(EC2, "InstanceId")
    insts = [tenant.ec2_instance(i) for i in ids]  # all validated before any change
    items = []
    for iid, inst in zip(ids, insts):
        previous = inst["state"]
        current = previous if previous in ("shutting-down", "terminated") else "shutting-down"
        inst["state"] = current
        items.append(
            "<item><instanceId>%s</instanceId>"
            "<currentState><code>%d</code><name>%s</name></currentState>"
            "<previousState><code>%d</code><name>%s</name></previousState></item>" %
            (escape(iid), EC2_STATE_CODES[current], current, EC2_STATE_CODES[previous], previous))
    return "<instancesSet>%s</instancesSet>" % "".join(items)


def create_tags(tenant, params):
    resources = _list_param(params, "ResourceId")
    if not resources:
        raise _missing(EC2, "ResourceId")
    keys = {}
    for key, value in params.items():
        m = re.match(r"^Tag\.(\d+)\.(Key|Value)$", key)
        if m:
            keys.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not keys:
        raise _missing(EC2, "Tag")
    tags = {}
    for _, kv in sorted(keys.items()):
        if "Key" not in kv:
            raise _missing(EC2, "Tag.Key")
        tags[kv["Key"]] = kv.get("Value", "")
    for rid in resources:
        if rid.startswith("i-"):
            tenant.ec2_instance(rid)["tags"].update(tags)
    return "<return>true</return>"


def describe_spot_price_history(tenant, params):
    types = set(_list_param(params, "InstanceType"))
    products = set(_list_param(params, "ProductDescription"))
    zone = params.get("AvailabilityZone")
    filters = {}
    for key, value in params.items():
        m = re.match(r"^Filter\.(\d+)\.Name$", key)
        if m:
            filters[value] = set(_list_param(params, "Filter.%s.Value" % m.group(1)))
    rows = []
    for p in tenant.spot_prices:
        row = {
            "instance_type": p.get("instance_type", "c5.large"),
            "availability_zone": p.get("availability_zone", "us-east-1a"),
            "price": str(p.get("price", "0.0350")),
            "product_description": p.get("product_description", "Linux/UNIX"),
            "timestamp": p.get("timestamp") or _now_iso(),
        }
        if types and row["instance_type"] not in types:
            continue
        if products and row["product_description"] not in products:
            continue
        if zone and row["availability_zone"] != zone:
            continue
        if "instance-type" in filters and row["instance_type"] not in filters["instance-type"]:
            continue
        if ("availability-zone" in filters and
                row["availability_zone"] not in filters["availability-zone"]):
            continue
        if ("product-description" in filters and
                row["product_description"] not in filters["product-description"]):
            continue
        rows.append(row)
    start = int(params.get("NextToken") or 0)
    limit = int(params.get("MaxResults") or 1000)
    page = rows[start:start + limit]
    next_token = str(start + limit) if start + limit < len(rows) else ""
    items = "".join(
        "<item><instanceType>%s</instanceType><productDescription>%s</productDescription>"
        "<spotPrice>%s</spotPrice><timestamp>%s</timestamp>"
        "<availabilityZone>%s</availabilityZone></item>" %
        tuple(escape(r[k]) for k in ("instance_type", "product_description", "price",
                                     "timestamp", "availability_zone"))
        for r in page)
    return "<spotPriceHistorySet>%s</spotPriceHistorySet><nextToken>%s</nextToken>" % (
        items, next_token)


# ---- Auto Scaling actions: return the XML inside <ActionResult> (None = empty result).

def terminate_instance_in_asg(tenant, params):
    iid = params.get("InstanceId")
    if not iid:
        raise _missing(AUTOSCALING, "InstanceId")
    decrement = _bool_param(AUTOSCALING, params, "ShouldDecrementDesiredCapacity")
    inst = tenant.asg_instance(iid)
    if inst["lifecycle_state"].startswith("Terminat"):
        raise ApiError(400, "ValidationError",
                       "The instance %s is already in the %s state." %
                       (iid, inst["lifecycle_state"]))
    inst["lifecycle_state"] = "Terminating"
    inst["decremented_desired_capacity"] = decrement
    now = _now_iso()
    cause = ("At %s instance %s was taken out of service in response to a user request%s." %
             (now, iid, ", shrinking the capacity" if decrement else ""))
    return ("<Activity><ActivityId>%s</ActivityId>"
            "<AutoScalingGroupName>%s</AutoScalingGroupName>"
            "<Description>Terminating EC2 instance: %s</Description>"
            "<Cause>%s</Cause><StartTime>%s</StartTime>"
            "<StatusCode>InProgress</StatusCode><Progress>0</Progress>"
            "<Details>{&quot;Subnet ID&quot;:&quot;subnet-0123456789abcdef0&quot;,"
            "&quot;Availability Zone&quot;:&quot;%s&quot;}</Details></Activity>" %
            (uuid.uuid4(), escape(inst["group"]), escape(iid), escape(cause), now,
             escape(inst["availability_zone"])))


def set_instance_protection(tenant, params):
    ids = _list_param(params, "InstanceIds.member")
    if not ids and "InstanceIds" not in params:
        raise _missing(AUTOSCALING, "InstanceIds")
    group = params.get("AutoScalingGroupName")
    if not group:
        raise _missing(AUTOSCALING, "AutoScalingGroupName")
    protect = _bool_param(AUTOSCALING, params, "ProtectedFromScaleIn")
    if len(ids) > 50:
        raise ApiError(400, "LimitExceeded", "The number of instances exceeds the limit of 50.")
    insts = []
    for iid in ids:
        inst = tenant.instances.get(iid)
        if inst is None or inst.get("group") != group:
            raise ApiError(400, "ValidationError",
                           "The instance %s is not part of Auto Scaling group %s." % (iid, group))
        insts.append(inst)
    for inst in insts:
        inst["protected"] = protect
    return None


def describe_asg_instances(tenant, params):
    ids = _list_param(params, "InstanceIds.member")
    chosen = ids if ids else sorted(tenant.instances)
    members = []
    for iid in chosen:
        inst = tenant.instances.get(iid)
        if inst is None or not inst.get("group"):
            continue
        members.append(
            "<member><InstanceId>%s</InstanceId><InstanceType>%s</InstanceType>"
            "<AutoScalingGroupName>%s</AutoScalingGroupName>"
            "<AvailabilityZone>%s</AvailabilityZone><LifecycleState>%s</LifecycleState>"
            "<HealthStatus>%s</HealthStatus>"
            "<LaunchTemplate><LaunchTemplateId>lt-0123456789abcdef0</LaunchTemplateId>"
            "<LaunchTemplateName>%s</LaunchTemplateName><Version>1</Version></LaunchTemplate>"
            "<ProtectedFromScaleIn>%s</ProtectedFromScaleIn></member>" %
            (escape(iid), escape(inst["instance_type"]), escape(inst["group"]),
             escape(inst["availability_zone"]), escape(inst["lifecycle_state"]),
             escape(inst["health_status"]), escape(inst["launch_template"]),
             "true" if inst["protected"] else "false"))
    return "<AutoScalingInstances>%s</AutoScalingInstances>" % "".join(members)


def _lifecycle_target(params):
    for name in ("LifecycleHookName", "AutoScalingGroupName"):
        if not params.get(name):
            raise _missing(AUTOSCALING, name)
    if not params.get("InstanceId") and not params.get("LifecycleActionToken"):
        raise ApiError(400, "ValidationError",
                       "Either InstanceId or LifecycleActionToken must be specified.")


def complete_lifecycle_action(tenant, params):
    _lifecycle_target(params)
    result = params.get("LifecycleActionResult")
    if not result:
        raise _missing(AUTOSCALING, "LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise ApiError(400, "ValidationError",
                       "Invalid LifecycleActionResult: %s (CONTINUE or ABANDON)" % result)
    inst = tenant.instances.get(params.get("InstanceId") or "")
    if inst is not None and inst["lifecycle_state"].endswith(":Wait"):
        phase = inst["lifecycle_state"].split(":")[0]
        if phase == "Pending" and result == "ABANDON":
            inst["lifecycle_state"] = "Terminating"
        else:
            inst["lifecycle_state"] = phase + ":Proceed"
    return None


def record_lifecycle_action_heartbeat(tenant, params):
    _lifecycle_target(params)
    key = params.get("InstanceId") or params.get("LifecycleActionToken")
    tenant.heartbeats[key] = tenant.heartbeats.get(key, 0) + 1
    return None


HANDLERS = {
    "TerminateInstances": terminate_instances,
    "CreateTags": create_tags,
    "DescribeSpotPriceHistory": describe_spot_price_history,
    "TerminateInstanceInAutoScalingGroup": terminate_instance_in_asg,
    "SetInstanceProtection": set_instance_protection,
    "DescribeAutoScalingInstances": describe_asg_instances,
    "CompleteLifecycleAction": complete_lifecycle_action,
    "RecordLifecycleActionHeartbeat": record_lifecycle_action_heartbeat,
}

_tenants = harness_common.Tenants(Tenant)


def _service_from_scope(authorization):
    m = re.search(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request", authorization or "")
    return m.group(1) if m else None


class Handler(harness_common.QueryHandler):
    tenants = _tenants

    def _api(self, tenant, params):
        action = params.pop("Action", "")
        service = _service_from_scope(self.headers.get("Authorization"))
        if service is None:
            service = AUTOSCALING if action in AUTOSCALING_ACTIONS else EC2
        request_id = str(uuid.uuid4())
        call = {"service": service, "action": action, "params": params, "time": time.time()}
        tenant.calls.append(call)
        try:
            if service not in NAMESPACES:
                raise ApiError(400, "InvalidAction",
                               "The service %s is not served here." % service)
            known = EC2_ACTIONS if service == EC2 else AUTOSCALING_ACTIONS
            if not action:
                raise ApiError(400, "MissingAction",
                               "The request must contain the parameter Action")
            if action not in known:
                if service == EC2:
                    raise ApiError(400, "InvalidAction",
                                   "The action %s is not valid for this web service." % action)
                raise ApiError(400, "InvalidAction",
                               "Could not find operation %s for version 2011-01-01" % action)
            failure = tenant.take_failure(action)
            if failure is not None:
                raise failure
            inner = HANDLERS[action](tenant, params)
        except ApiError as e:
            call["error"] = e.code
            return self._error(service, e, request_id)
        ns = NAMESPACES[service]
        if service == EC2:
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s">'
                   "<requestId>%s</requestId>%s</%sResponse>" %
                   (action, ns, request_id, inner or "", action))
        else:
            result = ("<%sResult>%s</%sResult>" % (action, inner, action)
                      if inner is not None else "<%sResult/>" % action)
            xml = ('<%sResponse xmlns="%s">%s<ResponseMetadata><RequestId>%s</RequestId>'
                   "</ResponseMetadata></%sResponse>" % (action, ns, result, request_id, action))
        self.reply(200, xml, "text/xml;charset=UTF-8",
                   headers={"x-amzn-RequestId": request_id})

    def _error(self, service, error, request_id):
        if service == EC2:
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                   "<Code>%s</Code><Message>%s</Message></Error></Errors>"
                   "<RequestID>%s</RequestID></Response>" %
                   (escape(error.code), escape(error.message), request_id))
        else:
            kind = "Receiver" if error.status >= 500 else "Sender"
            xml = ('<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code>'
                   "<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>" %
                   (NAMESPACES[AUTOSCALING], kind, escape(error.code), escape(error.message),
                    request_id))
        self.reply(error.status, xml, "text/xml;charset=UTF-8",
                   headers={"x-amzn-RequestId": request_id})



if __name__ == "__main__":
    harness_common.serve(Handler, "aws_fake")
