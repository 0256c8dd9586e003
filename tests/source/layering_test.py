#!/usr/bin/python3
"""The layers of common/ include only themselves and the layers below them.

common/CMakeLists.txt builds one library per layer, each linking only those below it:
core < http < aws < services < ledger. A header of a higher layer included from a lower one
would compile (all public headers share one include directory) but would make the layers
loop; this test refuses it, naming the file, the line and the include. It also refuses a
public header that includes libcurl or OpenSSL, which the libraries link privately.
"""

import pathlib
import re
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMON = ROOT / "common"
LAYERS = ["core", "http", "aws", "services", "ledger"]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')


def layer_of_file(path):
    rel = path.relative_to(COMMON).parts
    # include/spotgrid/<layer>/... or src/<layer>/...
    name = rel[2] if rel[0] == "include" else rel[1]
    return name if name in LAYERS else None


def layer_of_include(target):
    parts = target.split("/")
    if parts[0] == "spotgrid" and len(parts) > 2:
        return parts[1]
    if parts[0] in LAYERS and len(parts) > 1:  # a private header under common/src/<layer>/
        return parts[0]
    return None


def sources():
    for path in sorted(COMMON.rglob("*")):
        if path.suffix in (".h", ".cc") and path.is_file():
            yield path


def violations():
    found = []
    for path in sources():
        layer = layer_of_file(path)
        if layer is None:
            found.append(f"{path.relative_to(ROOT)}: outside every layer")
            continue
        public = path.relative_to(COMMON).parts[0] == "include"
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target = match.group(1)
            if public and (target.startswith("curl/") or target.startswith("openssl/")):
                found.append(f"{path.relative_to(ROOT)}:{number}: public header includes "
                             f"{target} (link it privately)")
            included = layer_of_include(target)
            if included is None:
                continue
            if included not in LAYERS:
                found.append(f"{path.relative_to(ROOT)}:{number}: unknown layer in {target}")
            elif LAYERS.index(included) > LAYERS.index(layer):
                found.append(f"{path.relative_to(ROOT)}:{number}: layer {layer} includes "
                             f"{target} from the higher layer {included}")
    return found


class LayeringTest(unittest.TestCase):
    def test_every_layer_includes_only_itself_and_the_layers_below(self):
        self.assertEqual(violations(), [])

    def test_the_check_sees_every_layer(self):
        seen = {layer_of_file(p) for p in sources()}
        self.assertEqual(seen, set(LAYERS))

    def test_the_check_refuses_an_upward_include(self):
        self.assertEqual(layer_of_include("spotgrid/services/sqs_client.h"), "services")
        self.assertEqual(layer_of_include("services/json_writer.h"), "services")
        self.assertIsNone(layer_of_include("nlohmann/json.hpp"))
        self.assertGreater(LAYERS.index("services"), LAYERS.index("aws"))


if __name__ == "__main__":
    sys.exit(unittest.main())
