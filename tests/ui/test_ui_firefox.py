#!/usr/bin/python3
"""test_ui_firefox.py: flowd's dashboard in headless Firefox (`make ui`, after test_ui.py).

Debian has firefox-esr but no geckodriver, so Selenium cannot drive Firefox here; Firefox itself
speaks WebDriver BiDi (the W3C protocol over a WebSocket, --remote-debugging-port), and this file
talks it directly with python3-websocket: a session, navigation, script evaluation, screenshots and
the console's log. With the same flowd as test_ui.py (its Run: SQLite, flowd-mock, three keys):
  - gives the admin key in the page's form; sees the count by status of a failed and a waiting job;
  - answers the waiting recipe job with the form's button and sees it succeed with shared.final;
  - redrives the failed job after fixing its flow (PUT) and sees the new job succeed, with where it
    came from;
  - runs test_ui.py's AUDIT_JS (names, contrast, landmarks, width) on the jobs and job pages at 1280
    and 390 px;
  - fails on a JavaScript error or a Content-Security-Policy report in the console.
Screenshots go to build/ui-shots/firefox-*.png. Firefox (FIREFOX, else firefox-esr or firefox on
the PATH) and python3-websocket are installed by make deps; without them it fails and says what is
missing, as test_ui.py does without Chromium.
Environment: as test_ui.py, and FIREFOX."""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

FIREFOX = os.environ.get("FIREFOX") or shutil.which("firefox-esr") or shutil.which("firefox")
try:
    import websocket  # python3-websocket
except ImportError:
    websocket = None

import test_ui as ui  # noqa: E402  (the flowd it starts, AUDIT_JS, BROKEN, call)

# Keeps Firefox from calling out while it runs (updates, telemetry, experiments): the page itself
# fetches nothing from elsewhere, and the test should not either.
PREFS = """
user_pref("app.update.enabled", false);
user_pref("app.normandy.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("messaging-system.rsexperimentloader.enabled", false);
user_pref("services.settings.server", "http://127.0.0.1:9/");
user_pref("browser.safebrowsing.update.enabled", false);
"""


class Bidi:
    """One WebDriver BiDi session over Firefox's WebSocket: commands wait for their own answer;
    events met meanwhile are kept (the log's entries)."""

    def __init__(self, port):
        deadline = time.time() + ui.WAIT_S
        while True:
            try:
                # Firefox refuses a handshake with an Origin header (a page must not drive it)
                self.ws = websocket.create_connection("ws://127.0.0.1:%d/session" % port,
                                                      timeout=ui.WAIT_S, suppress_origin=True)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.next_id = 0
        self.events = []
        self.cmd("session.new", {"capabilities": {}})
        self.cmd("session.subscribe", {"events": ["log.entryAdded"]})
        self.ctx = self.cmd("browsingContext.getTree", {})["contexts"][0]["context"]

    def cmd(self, method, params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if msg.get("type") == "error":
                    raise RuntimeError("%s: %s: %s" % (method, msg.get("error"), msg.get("message")))
                return msg["result"]
            if msg.get("type") == "event":
                self.events.append(msg)

    def js(self, expr):
        """The JSON value of a JavaScript expression in the page."""
        r = self.cmd("script.evaluate", {"expression": "JSON.stringify((() => {%s})())" % expr,
                                         "target": {"context": self.ctx}, "awaitPromise": False})
        if r.get("type") == "exception":
            raise RuntimeError("in the page: %s" % r["exceptionDetails"].get("text"))
        v = r["result"]
        return json.loads(v["value"]) if v.get("type") == "string" else None

    def wait(self, what, expr):
        deadline = time.time() + ui.WAIT_S
        while True:
            v = self.js(expr)
            if v:
                return v
            if time.time() > deadline:
                self.shot("firefox-timeout")
                raise AssertionError("Firefox: timed out after %d s waiting for %s (notice: %r)" % (
                    ui.WAIT_S, what, self.js("return document.querySelector('#notice').textContent;")))
            time.sleep(0.1)

    def go(self, url):
        self.cmd("browsingContext.navigate", {"context": self.ctx, "url": url, "wait": "complete"})

    def size(self, width, height):
        self.cmd("browsingContext.setViewport", {"context": self.ctx,
                                                 "viewport": {"width": width, "height": height}})

    def shot(self, name):
        os.makedirs(ui.SHOTS, exist_ok=True)
        data = self.cmd("browsingContext.captureScreenshot", {"context": self.ctx})["data"]
        with open(os.path.join(ui.SHOTS, name + ".png"), "wb") as f:
            f.write(base64.b64decode(data))

    def problems(self):
        out = []
        for e in self.events:
            p = e.get("params", {})
            text = p.get("text") or ""
            if e.get("method") == "log.entryAdded" and (
                    (p.get("type") == "javascript" and p.get("level") == "error")
                    or "Content-Security-Policy" in text or "Content Security Policy" in text):
                out.append("%s %s: %s" % (p.get("type"), p.get("level"), text))
        return out


def audit(b, page):
    problems = b.js(ui.AUDIT_JS)
    width, inner = b.js("return [document.documentElement.scrollWidth, window.innerWidth];")
    if width > inner:
        problems.append("%d px wide in a %d px window" % (width, inner))
    assert not problems, "Firefox, " + page + ":\n  " + "\n  ".join(problems)


def status_is(status):
    return "const s = document.querySelector('#job-status'); return s && s.dataset.status === '%s';" % status


def main():
    if FIREFOX is None or websocket is None:
        print("test_ui_firefox: FAILED: %s is not installed (make deps installs firefox-esr and "
              "python3-websocket)" % ("Firefox" if FIREFOX is None else "python3-websocket"))
        return 1
    run = ui.Run()
    run.start()
    profile = tempfile.mkdtemp(prefix="flowd-ff-")
    with open(os.path.join(profile, "user.js"), "w") as f:
        f.write(PREFS)
    port = ui.free_port()
    log = open(os.path.join(run.tmp, "firefox.log"), "w")
    ff = subprocess.Popen([FIREFOX, "--headless", "--no-remote", "--profile", profile,
                           "--remote-debugging-port", str(port), "about:blank"],
                          stdout=log, stderr=log)
    b = None
    try:
        admin = run.keys["admin"]
        status, body = ui.call(run.base, admin, "PUT", "/v1/flows/broken", ui.BROKEN)
        assert status == 201, body
        status, failed = ui.call(run.base, admin, "POST", "/v1/jobs", {"flow": "broken"})
        assert status == 202, failed
        status, recipe = ui.call(run.base, admin, "POST", "/v1/jobs", {
            "flow": "recipe", "shared": {"ingredient": "tofu"}, "params": {"recipes_api": run.mock_url}})
        assert status == 202, recipe

        b = Bidi(port)
        b.size(1280, 1400)
        b.go(run.base + "/")
        b.wait("the key form", "return !document.querySelector('#key-panel').hidden;")
        b.js("document.querySelector('#key-input').value = %s;"
             "document.querySelector('#key-form').requestSubmit(); return 1;" % json.dumps(admin))
        b.wait("the key taken", "return document.querySelector('#who').textContent.includes('role admin');")
        b.wait("the count by status", "const c = (s) => (document.querySelector(`[data-count='${s}']`) || {}).textContent;"
               " return c('failed') === '1' && c('waiting') === '1';")
        audit(b, "jobs at 1280 px")
        b.shot("firefox-jobs")

        b.go(run.base + "/ui/#/jobs/" + recipe["id"])
        yes = "document.querySelector(`button.choice[data-value='\"yes\"']`)"
        b.wait("the recipe job waiting", "return !!%s;" % yes)
        b.js("%s.click(); return 1;" % yes)
        b.wait("the recipe job succeeded", status_is("succeeded"))
        b.wait("shared.final in the tree",
               "return document.querySelector('#shared-tree').textContent.includes('final');")
        audit(b, "job at 1280 px")
        b.shot("firefox-job")

        b.go(run.base + "/ui/#/jobs/" + failed["id"])
        b.wait("the Redrive button", "return !!document.querySelector('#job-redrive');")
        fixed = dict(ui.BROKEN)
        fixed["nodes"] = dict(ui.BROKEN["nodes"])
        fixed["nodes"]["fetch"] = {"type": "set", "params": {"/got": "fixed"}, "next": {"default": "done"}}
        status, body = ui.call(run.base, admin, "PUT", "/v1/flows/broken", fixed)
        assert status == 200, body
        b.js("document.querySelector('#job-redrive').click(); return 1;")
        b.wait("the redriven job", "return !location.hash.endsWith(%s) && !!document.querySelector('#job-origin');"
               % json.dumps(failed["id"]))
        b.wait("the redriven job succeeded", status_is("succeeded"))
        origin = b.js("return document.querySelector('#job-origin').textContent;")
        assert ("Redriven from job %s at node fetch" % failed["id"]) in origin, origin
        b.shot("firefox-redriven")

        b.size(390, 844)
        for page, hash_, ready in (("jobs", "#/jobs", "return !!document.querySelector('#jobs-table tbody tr');"),
                                   ("job", "#/jobs/" + recipe["id"], status_is("succeeded"))):
            b.go(run.base + "/ui/" + hash_)
            b.wait(page + " on a phone", ready)
            audit(b, page + " at 390 px")
            b.shot("firefox-%s-phone" % page)
        problems = b.problems()
        assert not problems, "Firefox's console:\n" + "\n".join(problems)
        version = subprocess.run([FIREFOX, "--version"], capture_output=True, text=True).stdout.strip()
        print("test_ui_firefox: ok with %s (screenshots in %s)" % (version, ui.SHOTS))
        return 0
    finally:
        if b is not None:
            try:
                b.cmd("session.end", {})
            except (OSError, RuntimeError, websocket.WebSocketException):
                pass
        ff.terminate()
        try:
            ff.wait(10)
        except subprocess.TimeoutExpired:
            ff.kill()
        shutil.rmtree(profile, ignore_errors=True)
        run.stop()


if __name__ == "__main__":
    sys.exit(main())
