#!/usr/bin/python3
"""spotgrid's credentials chain held to botocore's, row by row.

Each row is a combination of ~/.aws/config, ~/.aws/credentials, environment variables, SSO
token cache files and fake-service state. For every row, spotgrid (tests/tools/credentials_tool)
and botocore (Debian's /usr/bin/python3) run in the same kind of environment: HOME in a fresh
temporary directory, nothing inherited but PATH, IMDS disabled, STS / SSO / SSO OIDC pointed at
the fakes (tests/harness/sts_fake.py, sso_fake.py, started in this process on free ports), and
a proxy on a closed loopback port for anything else, so a request that would leave the machine
fails at once instead of reaching AWS. Each side gets its own copy of the files and its own
tenant of the fakes, seeded identically, so a refresh by one side cannot help the other.

Both must resolve the same access key id and region, or both refuse; each row also states
which of the two it expects, so a row cannot pass by both sides failing for an unrelated reason.
botocore 1.29 predates AWS_ENDPOINT_URL_<SERVICE>: its session's create_client is wrapped to
pass the same endpoints (the credential providers create their STS/SSO/OIDC clients through it).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import hashlib
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
import sso_fake  # noqa: E402
import sts_fake  # noqa: E402

BINARY_DIR = os.environ.get("SPOTGRID_BINARY_DIR", "")
TOOL = os.path.join(BINARY_DIR, "tests", "credentials_tool")
PY = "/usr/bin/python3"
FAR = "2099-01-01T00:00:00Z"
PAST = "2001-01-01T00:00:00Z"

BOTOCORE_SIDE = r'''
import json, os, sys
import botocore.session
out = {}
try:
    session = botocore.session.Session()
    original = session.create_client
    endpoints = {"sts": "AWS_ENDPOINT_URL_STS", "sso": "AWS_ENDPOINT_URL_SSO",
                 "sso-oidc": "AWS_ENDPOINT_URL_SSO_OIDC"}
    def create_client(service_name, *args, **kwargs):
        if service_name not in endpoints:
            raise RuntimeError("unexpected client " + service_name)
        kwargs["endpoint_url"] = os.environ[endpoints[service_name]]
        # Without a configured region botocore sends STS calls to the global endpoint, which
        # signs for us-east-1; with an endpoint_url it would refuse instead (NoRegionError).
        if (service_name == "sts" and kwargs.get("region_name") is None
                and session.get_config_variable("region") is None):
            kwargs["region_name"] = "us-east-1"
        return original(service_name, *args, **kwargs)
    session.create_client = create_client
    try:
        out["region"] = session.get_config_variable("region")
    except Exception:
        out["region"] = None
    credentials = session.get_credentials()
    if credentials is None:
        out["error"] = "no credentials"
    else:
        out["access_key_id"] = credentials.get_frozen_credentials().access_key
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
'''

PROC = textwrap.dedent("""\
    import json, sys
    key = sys.argv[1] if len(sys.argv) > 1 else "AKIAPROCESS"
    version = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    if key == "fail":
        sys.stderr.write("please log in first\\n")
        sys.exit(3)
    print(json.dumps({"Version": version, "AccessKeyId": key, "SecretAccessKey": "s",
                      "SessionToken": "t", "Expiration": "%s"}))
    """ % FAR)


def sso_cache(key, token, expires, refresh=None):
    doc = {"startUrl": "https://fake.awsapps.com/start", "region": "eu-west-1",
           "accessToken": token, "expiresAt": expires}
    if refresh:
        doc.update({"refreshToken": refresh, "clientId": "client-1",
                    "clientSecret": "client-secret-1", "registrationExpiresAt": FAR})
    return (key, doc)


SSO_SESSION_PROFILE = """
[profile dev]
sso_session = corp
sso_account_id = 111122223333
sso_role_name = Researcher
region = eu-west-1
[sso-session corp]
sso_start_url = https://fake.awsapps.com/start
sso_region = eu-west-1
sso_registration_scopes = sso:account:access
"""
LEGACY_SSO_PROFILE = """
[profile old]
sso_start_url = https://legacy.awsapps.com/start
sso_region = us-east-2
sso_account_id = 444455556666
sso_role_name = Admin
"""
BASE_KEYS = "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n"

# name, expect ("ok"/"error"), and the row's files, environment and fake state.
ROWS = [
    dict(name="env_keys", expect="ok",
         env={"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"}),
    dict(name="env_keys_beat_profile_keys", expect="ok",
         env={"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"},
         credentials="[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n"),
    dict(name="static_credentials_file", expect="ok",
         credentials="[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n"),
    dict(name="static_config_file_with_region", expect="ok",
         config="[default]\nregion = ap-south-1\naws_access_key_id = AKIACONF\n"
                "aws_secret_access_key = s\n"),
    dict(name="credentials_file_beats_config_file", expect="ok",
         credentials="[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n",
         config="[default]\naws_access_key_id = AKIACONF\naws_secret_access_key = s\n"),
    dict(name="named_profile_and_its_region", expect="ok", env={"AWS_PROFILE": "dev"},
         config="[profile dev]\nregion = eu-central-1\naws_access_key_id = AKIADEV\n"
                "aws_secret_access_key = s\n"),
    dict(name="default_region_env_beats_profile_region", expect="ok",
         env={"AWS_DEFAULT_REGION": "us-west-2"},
         config="[default]\nregion = eu-central-1\naws_access_key_id = AKIADEV\n"
                "aws_secret_access_key = s\n"),
    dict(name="region_in_credentials_file_wins", expect="ok",
         credentials="[default]\nregion = sa-east-1\naws_access_key_id = AKIAFILE\n"
                     "aws_secret_access_key = s\n",
         config="[default]\nregion = eu-north-1\n"),
    dict(name="unknown_profile", expect="error", env={"AWS_PROFILE": "nope"},
         credentials="[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n"),
    dict(name="unknown_profile_even_with_env_keys", expect="error",
         env={"AWS_PROFILE": "nope", "AWS_ACCESS_KEY_ID": "AKIAENV",
              "AWS_SECRET_ACCESS_KEY": "s"}),
    dict(name="profile_without_credentials", expect="error", env={"AWS_PROFILE": "empty"},
         config="[profile empty]\nregion = eu-west-3\n"),
    dict(name="nothing_configured", expect="error"),
    dict(name="credential_process", expect="ok",
         config="[default]\ncredential_process = %s {home}/proc.py AKIAPROC\n" % PY),
    dict(name="credential_process_quoted_words", expect="ok",
         config="[default]\ncredential_process = %s \"{home}/dir with space/proc.py\" "
                "'AKIAQUOTED'\n" % PY),
    dict(name="credential_process_fails", expect="error",
         config="[default]\ncredential_process = %s {home}/proc.py fail\n" % PY),
    dict(name="credential_process_wrong_version", expect="error",
         config="[default]\ncredential_process = %s {home}/proc.py AKIAPROC 2\n" % PY),
    dict(name="credential_process_beats_config_keys", expect="ok",
         config="[default]\ncredential_process = %s {home}/proc.py AKIAPROC\n"
                "aws_access_key_id = AKIACONF\naws_secret_access_key = s\n" % PY),
    dict(name="credentials_file_keys_beat_credential_process", expect="ok",
         credentials="[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n",
         config="[default]\ncredential_process = %s {home}/proc.py AKIAPROC\n" % PY),
    dict(name="web_identity_env", expect="ok",
         env={"AWS_WEB_IDENTITY_TOKEN_FILE": "{home}/token",
              "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/irsa",
              "AWS_ROLE_SESSION_NAME": "pod-1"}),
    dict(name="web_identity_profile", expect="ok",
         config="[default]\nweb_identity_token_file = {home}/token\n"
                "role_arn = arn:aws:iam::123456789012:role/web\n"),
    dict(name="web_identity_env_role_beats_profile_role", expect="ok",
         env={"AWS_WEB_IDENTITY_TOKEN_FILE": "{home}/token",
              "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/from-env"},
         config="[default]\nweb_identity_token_file = {home}/token\n"
                "role_arn = arn:aws:iam::123456789012:role/web\n"),
    dict(name="web_identity_without_role", expect="error",
         env={"AWS_WEB_IDENTITY_TOKEN_FILE": "{home}/token"}),
    dict(name="web_identity_token_rejected", expect="error",
         env={"AWS_WEB_IDENTITY_TOKEN_FILE": "{home}/token",
              "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/irsa"},
         sts_state={"rejected_tokens": ["eyJ.fake-web-identity-token"]}),
    dict(name="role_with_source_profile", expect="ok", env={"AWS_PROFILE": "role"},
         credentials=BASE_KEYS,
         config="[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r1\n"
                "source_profile = base\nregion = us-east-2\n"),
    dict(name="role_chain_of_two", expect="ok", env={"AWS_PROFILE": "role2"},
         credentials=BASE_KEYS,
         config="[profile role1]\nrole_arn = arn:aws:iam::123456789012:role/r1\n"
                "source_profile = base\n"
                "[profile role2]\nrole_arn = arn:aws:iam::123456789012:role/r2\n"
                "source_profile = role1\n"),
    dict(name="role_takes_no_region_from_source_profile", expect="ok",
         env={"AWS_PROFILE": "role"},
         credentials=BASE_KEYS,
         config="[profile base]\nregion = eu-west-1\n"
                "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r1\n"
                "source_profile = base\n"),
    dict(name="role_cycle", expect="error", env={"AWS_PROFILE": "a"},
         config="[profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = b\n"
                "[profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = a\n"),
    dict(name="role_source_is_itself_with_keys", expect="ok", env={"AWS_PROFILE": "self"},
         credentials="[self]\naws_access_key_id = AKIASELF\naws_secret_access_key = s\n",
         config="[profile self]\nrole_arn = arn:aws:iam::123456789012:role/self\n"
                "source_profile = self\n"),
    dict(name="role_options", expect="ok", env={"AWS_PROFILE": "role"},
         credentials=BASE_KEYS,
         config="[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r1\n"
                "source_profile = base\nexternal_id = ext-42\nrole_session_name = alice\n"
                "duration_seconds = 1800\n",
         compare_sts_params=True),
    dict(name="role_credential_source_environment_without_keys", expect="error",
         env={"AWS_PROFILE": "cs"},
         config="[profile cs]\nrole_arn = arn:aws:iam::123456789012:role/cs\n"
                "credential_source = Environment\n"),
    # The environment's keys answer first, before the role profile is looked at.
    dict(name="role_credential_source_environment_with_keys", expect="ok",
         env={"AWS_PROFILE": "cs", "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s"},
         config="[profile cs]\nrole_arn = arn:aws:iam::123456789012:role/cs\n"
                "credential_source = Environment\n"),
    dict(name="role_credential_source_imds_disabled", expect="error",
         env={"AWS_PROFILE": "cs"},
         config="[profile cs]\nrole_arn = arn:aws:iam::123456789012:role/cs\n"
                "credential_source = Ec2InstanceMetadata\n"),
    dict(name="role_credential_source_invalid", expect="error", env={"AWS_PROFILE": "cs"},
         config="[profile cs]\nrole_arn = arn:aws:iam::123456789012:role/cs\n"
                "credential_source = Mainframe\n"),
    dict(name="role_without_source", expect="error", env={"AWS_PROFILE": "r"},
         config="[profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\n"),
    dict(name="role_with_missing_source_profile", expect="error", env={"AWS_PROFILE": "r"},
         config="[profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\n"
                "source_profile = ghost\n"),
    dict(name="role_profile_beats_web_identity_env", expect="ok",
         env={"AWS_PROFILE": "role", "AWS_WEB_IDENTITY_TOKEN_FILE": "{home}/token",
              "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/irsa"},
         credentials=BASE_KEYS,
         config="[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r1\n"
                "source_profile = base\n"),
    dict(name="sso_session_fresh_token", expect="ok", env={"AWS_PROFILE": "dev"},
         config=SSO_SESSION_PROFILE,
         sso_cache=[sso_cache("corp", "at-fresh", FAR)],
         sso_state={"access_tokens": {"at-fresh": None}}),
    dict(name="sso_legacy_fresh_token", expect="ok", env={"AWS_PROFILE": "old"},
         config=LEGACY_SSO_PROFILE,
         sso_cache=[sso_cache("https://legacy.awsapps.com/start", "at-legacy", FAR)],
         sso_state={"access_tokens": {"at-legacy": None}}),
    dict(name="sso_session_expired_token_is_refreshed", expect="ok",
         env={"AWS_PROFILE": "dev"}, config=SSO_SESSION_PROFILE,
         sso_cache=[sso_cache("corp", "at-old", PAST, refresh="rt-1")],
         sso_state={"refresh_tokens": {"rt-1": "client-1"}},
         expect_calls=["CreateToken", "GetRoleCredentials"]),
    dict(name="sso_session_expired_refresh_refused", expect="error",
         env={"AWS_PROFILE": "dev"}, config=SSO_SESSION_PROFILE,
         sso_cache=[sso_cache("corp", "at-old", PAST, refresh="rt-unknown")],
         login_hint="dev"),
    dict(name="sso_session_not_logged_in", expect="error", env={"AWS_PROFILE": "dev"},
         config=SSO_SESSION_PROFILE, login_hint="dev"),
    dict(name="sso_legacy_expired_token", expect="error", env={"AWS_PROFILE": "old"},
         config=LEGACY_SSO_PROFILE,
         sso_cache=[sso_cache("https://legacy.awsapps.com/start", "at-legacy", PAST)],
         sso_state={"access_tokens": {"at-legacy": 978307200}}, login_hint="old"),
    dict(name="sso_session_section_missing", expect="error", env={"AWS_PROFILE": "dev"},
         config="[profile dev]\nsso_session = nowhere\nsso_account_id = 1\n"
                "sso_role_name = R\n"),
    dict(name="sso_profile_missing_region", expect="error", env={"AWS_PROFILE": "bad"},
         config="[profile bad]\nsso_start_url = https://x.awsapps.com/start\n"
                "sso_account_id = 1\nsso_role_name = R\n"),
    dict(name="sso_beats_credentials_file_keys", expect="ok", env={"AWS_PROFILE": "dev"},
         config=SSO_SESSION_PROFILE,
         credentials="[dev]\naws_access_key_id = AKIAFILE\naws_secret_access_key = s\n",
         sso_cache=[sso_cache("corp", "at-fresh", FAR)],
         sso_state={"access_tokens": {"at-fresh": None}}),
    # (An sso-session profile as a source profile crashes botocore 1.29 with an AttributeError,
    # so the table uses a legacy SSO profile there.)
    dict(name="legacy_sso_as_source_profile_of_role", expect="ok",
         env={"AWS_PROFILE": "role"},
         config=LEGACY_SSO_PROFILE +
         "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r1\nsource_profile = old\n",
         sso_cache=[sso_cache("https://legacy.awsapps.com/start", "at-legacy", FAR)],
         sso_state={"access_tokens": {"at-legacy": None}}),
]


def start(module):
    module.Handler.log_message = lambda *args: None  # the table is the output
    server = module.make_server()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    return server


def control(base, tenant, method, what, doc=None):
    data = json.dumps(doc).encode() if doc is not None else None
    request = urllib.request.Request("%s/%s/_fake/%s" % (base, tenant, what), data=data,
                                     method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def prepare_home(row, root):
    home = os.path.join(root, "home")
    os.makedirs(os.path.join(home, ".aws", "sso", "cache"))
    os.makedirs(os.path.join(home, "dir with space"))
    for path in ("proc.py", "dir with space/proc.py"):
        with open(os.path.join(home, path), "w") as f:
            f.write(PROC)
    with open(os.path.join(home, "token"), "w") as f:
        f.write("eyJ.fake-web-identity-token")
    for name in ("config", "credentials"):
        if name in row:
            with open(os.path.join(home, ".aws", name), "w") as f:
                f.write(row[name].replace("{home}", home))
    for key, doc in row.get("sso_cache", []):
        digest = hashlib.sha1(key.encode()).hexdigest()
        with open(os.path.join(home, ".aws", "sso", "cache", digest + ".json"), "w") as f:
            json.dump(doc, f)
    return home


def run_side(side, row, index, sts_base, sso_base, root):
    tenant = "row%d-%s" % (index, side)
    if row.get("sts_state"):
        control(sts_base, tenant, "PUT", "state", row["sts_state"])
    if row.get("sso_state"):
        control(sso_base, tenant, "PUT", "state", row["sso_state"])
    home = prepare_home(row, root)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": home, "LC_ALL": "C.UTF-8",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_STS": "%s/%s" % (sts_base, tenant),
        "AWS_ENDPOINT_URL_SSO": "%s/%s" % (sso_base, tenant),
        "AWS_ENDPOINT_URL_SSO_OIDC": "%s/%s" % (sso_base, tenant),
        # Anything not sent to the fakes goes to a closed port and fails at once.
        "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    for key, value in row.get("env", {}).items():
        env[key] = value.replace("{home}", home)
    argv = [TOOL] if side == "spotgrid" else [PY, "-c", BOTOCORE_SIDE]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"error": "no JSON output: %r %r" % (proc.stdout, proc.stderr[-2000:])}
    result["sts_calls"] = control(sts_base, tenant, "GET", "calls")
    result["sso_calls"] = control(sso_base, tenant, "GET", "calls")
    return result


def check_row(row, index, sts_base, sso_base):
    results = {}
    for side in ("spotgrid", "botocore"):
        root = tempfile.mkdtemp(prefix="creds-diff-")
        try:
            results[side] = run_side(side, row, index, sts_base, sso_base, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    ours, theirs = results["spotgrid"], results["botocore"]
    problems = []
    for side, result in results.items():
        outcome = "error" if "error" in result else "ok"
        if outcome != row["expect"]:
            problems.append("%s: expected %s, got %s" % (side, row["expect"], result))
    if ours.get("access_key_id") != theirs.get("access_key_id"):
        problems.append("access key ids differ: %s vs %s" %
                        (ours.get("access_key_id"), theirs.get("access_key_id")))
    if "error" not in ours and ours.get("region") != theirs.get("region"):
        problems.append("regions differ: %s vs %s" % (ours.get("region"), theirs.get("region")))
    if row.get("compare_sts_params"):
        ours_params = [c["params"] for c in ours["sts_calls"]]
        theirs_params = [c["params"] for c in theirs["sts_calls"]]
        if ours_params != theirs_params:
            problems.append("STS calls differ: %s vs %s" % (ours_params, theirs_params))
    if row.get("expect_calls"):
        for side, result in results.items():
            actions = [c["action"] for c in result["sso_calls"]]
            if actions != row["expect_calls"]:
                problems.append("%s made SSO calls %s" % (side, actions))
    if row.get("login_hint"):
        hint = "run: aws sso login --profile " + row["login_hint"]
        if hint not in ours.get("error", ""):
            problems.append("spotgrid's error lacks %r: %s" % (hint, ours.get("error")))
    for side, result in results.items():
        for secret in ("secret-", "token-", "client-secret", "at-fresh", "rt-1"):
            if secret in result.get("error", ""):
                problems.append("%s's error shows a secret (%s)" % (side, secret))
    summary = ours.get("access_key_id") or "refused"
    return problems, summary, ours, theirs


def main():
    if not os.path.exists(TOOL):
        print("credentials_tool not built: %s (set SPOTGRID_BINARY_DIR)" % TOOL)
        return 1
    sts_server, sso_server = start(sts_fake), start(sso_fake)
    sts_base = "http://127.0.0.1:%d" % sts_server.server_address[1]
    sso_base = "http://127.0.0.1:%d" % sso_server.server_address[1]
    only = sys.argv[1:]
    failures = 0
    try:
        for index, row in enumerate(ROWS):
            if only and row["name"] not in only:
                continue
            problems, summary, ours, theirs = check_row(row, index, sts_base, sso_base)
            status = "ok  " if not problems else "FAIL"
            print("%s %-48s %-24s region=%s" % (status, row["name"], summary, ours.get("region")))
            if problems:
                failures += 1
                for problem in problems:
                    print("     " + problem)
                print("     spotgrid: %s" % ours.get("error"))
                print("     botocore: %s" % theirs.get("error"))
    finally:
        sts_server.shutdown()
        sso_server.shutdown()
    print("%d rows, %d failed" % (len(ROWS) if not only else len(only), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
