"""What the packaging tests share: where the tree and the build are, and running tools.

The tests run with Debian's /usr/bin/python3 under ctest, which sets SPOTGRID_SOURCE_DIR and
SPOTGRID_BINARY_DIR. They never contact AWS: every tool is run offline.
"""

import os
import subprocess

SOURCE_DIR = os.environ.get(
    "SPOTGRID_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY_DIR = os.environ.get("SPOTGRID_BINARY_DIR", "")


def source(*parts):
    return os.path.join(SOURCE_DIR, *parts)


def built_program(name):
    """The path of a built program (agent, controller); fails the caller when missing."""
    if not BINARY_DIR:
        raise RuntimeError("SPOTGRID_BINARY_DIR is not set: run through ctest")
    path = os.path.join(BINARY_DIR, name, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s is not built: cmake --build %s --target %s" % (path, BINARY_DIR, name))
    return path


def run(args, check=True, **kwargs):
    """Runs a program, returning its CompletedProcess (text); raises with its output on failure."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    done = subprocess.run(args, text=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s" %
                             (" ".join(args), done.returncode, done.stdout, done.stderr))
    return done


def parse_env_file(text):
    """Parses systemd EnvironmentFile= syntax (systemd.exec(5)) the way the agent's
    ParseEnvFile does: KEY=VALUE lines, # and ; comments, 'single quotes' literal,
    "double quotes" with \\" \\\\ \\` \\$ escaped, a bare backslash escaping the next
    character. Returns {key: value}; raises ValueError on a malformed line."""
    values = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r":
            i += 1
        if i >= n:
            break
        if text[i] == "\n":
            i += 1
            continue
        if text[i] in "#;":
            while i < n and text[i] != "\n":
                i += 1
            continue
        eq = text.find("=", i)
        newline = text.find("\n", i)
        if eq < 0 or (0 <= newline < eq):
            raise ValueError("expected KEY=VALUE at %r" % text[i:newline])
        key = text[i:eq].strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        value, protected = "", 0
        while i < n and text[i] != "\n":
            c = text[i]
            if c == "'":
                close = text.index("'", i + 1)
                value += text[i + 1:close]
                protected = len(value)
                i = close + 1
            elif c == '"':
                i += 1
                while True:
                    if i >= n:
                        raise ValueError("unterminated \" in %s" % key)
                    if text[i] == '"':
                        i += 1
                        break
                    if text[i] == "\\" and i + 1 < n:
                        nxt = text[i + 1]
                        if nxt == "\n":
                            pass
                        elif nxt in '"\\`$':
                            value += nxt
                        else:
                            value += "\\" + nxt
                        i += 2
                        continue
                    value += text[i]
                    i += 1
                protected = len(value)
            elif c == "\\":
                if i + 1 < n and text[i + 1] != "\n":
                    value += text[i + 1]
                    protected = len(value)
                i += 2
            else:
                value += c
                i += 1
        while len(value) > protected and value[-1] in " \t\r":
            value = value[:-1]
        values[key] = value
    return values


def unit_directives(text):
    """{(section, key): [values]} of a systemd unit file (comments and blanks skipped)."""
    directives, section = {}, ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        directives.setdefault((section, key.strip()), []).append(value.strip())
    return directives


def seconds(text):
    """A systemd time span such as 90s, 10min, 2h, 1min 30s, in seconds."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "": 1}
    total = 0
    for part in text.split():
        number = part.rstrip("abcdefghijklmnopqrstuvwxyz")
        total += int(number) * units[part[len(number):]]
    return total
