#!/usr/bin/python3
"""Every status flowd answers is one api/openapi.yaml declares for that operation.

Starts FLOWD (default build/flowd) with a key file, on a free port, with the memory store, and sends
each operation of api/openapi.yaml requests that take no effect: an unknown query parameter (400),
no key (401; /healthz 200), a read key (403 for what needs more, else the answer itself), a job
or flow that does not exist (404), and for a body of the wrong type (415). Each status got must be
one the operation lists. Needs Debian's python3-yaml (make deps).
Usage: tests/contract/answers.py [FLOWD]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FLOWD = sys.argv[1] if len(sys.argv) > 1 else "build/flowd"
NO_JOB = "0" * 32


def new_key(role):
    out = subprocess.run([FLOWD, "key", "new", "--name", role, "--role", role], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    return out[0], out[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to check (/ and /ui: 302), not one to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(base, method, path, key=None, body=None, ctype="application/json"):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else body.encode())
    if body is not None:
        req.add_header("Content-Type", ctype)
    if key is not None:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with OPENER.open(req, timeout=10) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    os.chdir(ROOT)
    spec = yaml.safe_load(open("api/openapi.yaml"))
    tmp = tempfile.mkdtemp(prefix="flowd-contract-")
    keys = {}
    with open(os.path.join(tmp, "keys"), "w") as f:
        for role in ("read", "admin"):
            keys[role], line = new_key(role)
            f.write(line + "\n")
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen([FLOWD, "--port", "0", "--store", "memory:", "--keys", os.path.join(tmp, "keys")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = None
        for _ in range(200):
            log.seek(0)
            m = re.search(r"listening on (http://\S+)", log.read())
            if m:
                base = m.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if base is None:
            log.seek(0)
            print("contract: flowd did not start:\n" + log.read())
            return 1
        status, text = call(base, "POST", "/v1/jobs", keys["admin"], '{"flow": "noop"}')
        if status != 202:
            print("contract: POST /v1/jobs answered %d: %s" % (status, text))
            return 1
        job = json.loads(text)["id"]

        bad, checked = [], 0
        for path, item in spec["paths"].items():
            for method, op in item.items():
                if method not in ("get", "post", "put", "delete"):
                    continue
                declared = {str(c) for c in op["responses"]}
                M = method.upper()
                real = path.replace("{id}", job).replace("{name}", "noop")
                absent = path.replace("{id}", NO_JOB).replace("{name}", "no-such-flow")
                body = '{"value": 1}' if path.endswith("/input") else "{}" if M in ("POST", "PUT") else None
                tries = [
                    ("an unknown query parameter", real + "?contract_probe=1", keys["admin"], body, "application/json"),
                    ("no key", real, None, body, "application/json"),
                ]
                if M == "GET":  # takes no effect: the answer itself
                    tries.append(("a read key", real, keys["read"], None, None))
                else:  # refused before anything happens
                    tries.append(("a read key", real, keys["read"], body, "application/json"))
                if "{id}" in path or ("{name}" in path and M != "PUT"):
                    tries.append(("one that does not exist", absent, keys["admin"], body, "application/json"))
                if M in ("POST", "PUT") and not path.endswith("/cancel"):
                    tries.append(("a text/plain body", absent, keys["admin"], "x", "text/plain"))
                for what, url, key, b, ctype in tries:
                    status, text = call(base, M, url, key, b, ctype or "application/json")
                    checked += 1
                    if str(status) not in declared:
                        bad.append("%s %s (%s): %d is not declared (it lists %s): %s" % (
                            M, path, what, status, ", ".join(sorted(declared)), text[:200]))
        for b in bad:
            print("contract: " + b)
        if not bad:
            print("contract: %d answers of flowd to the %d operations of api/openapi.yaml are all declared" % (
                checked, sum(1 for i in spec["paths"].values() for m in i if m in ("get", "post", "put", "delete"))))
        return 1 if bad else 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        for name in ("keys", "log"):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
