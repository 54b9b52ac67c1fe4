#!/usr/bin/python3
"""test_ui.py: flowd's dashboard (server/ui/) driven in headless Chromium with Selenium (`make ui`).

Starts flowd-mock (the recipe API and the model) and a flowd on 127.0.0.1 (SQLite, which keeps what a
redrive needs) with the example flows and a key file of three keys (admin, submit, read), then, as a
person would in the page:
  - gives the admin key; starts the recipe flow from the jobs page; sees it wait; answers "no" then
    "yes" with the form's buttons; sees it succeed with shared.final in the store's tree;
  - starts a flow whose http node is refused and sees the error at its node (the job's error, the
    timeline's failed step, the graph's node when the server draws one);
  - edits the recipe flow with a mistake and sees the problem at its line;
  - forks the recipe job after its first step from the timeline's "Fork from here" and sees the new
    job wait at approve again, saying where it came from;
  - redrives the failed job: refused readably (node_gone) while its flow lacks the node, then, after
    fixing the flow in the editor, a new job that says where it came from and succeeds; the count
    by status follows;
  - every page at 1280 and 390 px: controls named, text contrast, landmarks, nothing wider than the
    window (the jobs table scrolls in its box), the focus ring seen when tabbing;
  - with the submit key and the read key, finds no flow editor (nor, for read, any form to start,
    answer, cancel or redrive a job).
Screenshots of each page go to build/ui-shots/ (UI_SHOTS). Every wait is bounded (WAIT_S); the test
fails on a timeout, on a JavaScript error or a Content-Security-Policy violation in the console.

Environment: FLOWD_BIN (build/flowd), MOCK_BIN (build/flowd-mock), UI_SHOTS, CHROMIUM
(/usr/bin/chromium), CHROMEDRIVER (/usr/bin/chromedriver)."""

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT_S = 20
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWD = os.environ.get("FLOWD_BIN", os.path.join(ROOT, "build/flowd"))
MOCK = os.environ.get("MOCK_BIN", os.path.join(ROOT, "build/flowd-mock"))
SHOTS = os.environ.get("UI_SHOTS", os.path.join(ROOT, "build/ui-shots"))

# A flow whose only node calls an address the outbound policy refuses (loopback port 9 is not
# allowed): the job fails at once, at node "fetch".
BROKEN = {
    "name": "broken",
    "description": "Fails at its http node: the address is not one nodes may reach.",
    "start": "fetch",
    "nodes": {
        "fetch": {"type": "http", "params": {"url": "http://127.0.0.1:9/nothing"}, "out": "/got",
                  "next": {"default": "done"}},
        "done": {"type": "set", "params": {"/ok": True}},
    },
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, key, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Bearer " + key)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Run:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="flowd-ui-")
        self.procs = []
        self.keys = {role: "fk_" + secrets.token_urlsafe(32) for role in ("admin", "submit", "read")}
        with open(os.path.join(self.tmp, "keys"), "w") as f:
            for role, key in self.keys.items():
                f.write("%s ui-%s %s default\n" % (hashlib.sha256(key.encode()).hexdigest(), role, role))
        self.mock_port = free_port()
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.mock_url = "http://127.0.0.1:%d" % self.mock_port

    def start(self):
        log = open(os.path.join(self.tmp, "mock.log"), "w")
        self.procs.append(subprocess.Popen([MOCK, "--port", str(self.mock_port)], stdout=log, stderr=log))
        log = open(os.path.join(self.tmp, "flowd.log"), "w")
        self.procs.append(subprocess.Popen(
            [FLOWD, "--bind", "127.0.0.1", "--port", str(self.port),
             "--store", "sqlite:" + os.path.join(self.tmp, "flowd.db"),  # keeps what a redrive needs
             "--flows", os.path.join(ROOT, "examples/flows"), "--keys", os.path.join(self.tmp, "keys"),
             "--llm-base-url", self.mock_url + "/v1", "--llm-model", "mock",
             "--allow-outbound", "127.0.0.1:%d" % self.mock_port], stdout=log, stderr=log))
        deadline = time.time() + WAIT_S
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or self.procs[-1].poll() is not None:
                    raise RuntimeError("flowd did not start: see " + log.name)
                time.sleep(0.1)

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def browser(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=%d,%d" % (width, height)):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=svc, options=opts)
    d.set_page_load_timeout(WAIT_S)
    return d


class Page:
    def __init__(self, d, run):
        self.d = d
        self.run = run
        self.problems = []

    def wait(self, what, cond):
        def check(_):
            try:
                return cond()
            except StaleElementReferenceException:  # the page re-rendered under us: look again
                return False
        try:
            return WebDriverWait(self.d, WAIT_S, poll_frequency=0.1).until(check)
        except TimeoutException:
            self.shot("timeout")
            raise AssertionError("timed out after %d s waiting for %s (page: %s; notice: %r)" % (
                WAIT_S, what, self.d.current_url, self.text("#notice")))

    def q(self, sel):
        found = self.d.find_elements(By.CSS_SELECTOR, sel)
        return found[0] if found else None

    def text(self, sel):
        el = self.q(sel)
        return el.text if el is not None else None

    def click(self, what, sel):
        """Clicks sel once it is there (again when the page re-rendered it meanwhile)."""
        def go():
            el = self.q(sel)
            if el is None or not el.is_enabled():
                return False
            el.click()
            return True
        self.wait(what, go)

    def go(self, hash_):
        self.d.get(self.run.base + "/ui/" + hash_)

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        self.d.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def console(self):
        """JavaScript errors and CSP violations logged so far (a 404 of a resource is not one)."""
        for e in self.d.get_log("browser"):
            m = e.get("message", "")
            if e.get("level") == "SEVERE" and ("Content Security Policy" in m or "Uncaught" in m
                                               or "TypeError" in m or "ReferenceError" in m):
                self.problems.append(m)

    def give_key(self, key):
        self.wait("the key form", lambda: self.q("#key-panel") and self.q("#key-panel").is_displayed())
        self.q("#key-input").send_keys(key)
        self.q("#key-save").click()
        self.wait("the key taken", lambda: not self.q("#key-panel").is_displayed()
                  and "role" in (self.text("#who") or ""))

    def job_status(self):
        el = self.q("#job-status")
        return el.get_attribute("data-status") if el is not None else None

    def submit(self, flow, shared, params):
        self.go("#/jobs")
        self.wait("the submit form", lambda: self.q("#submit-flow") is not None)
        Select(self.q("#submit-flow")).select_by_value(flow)
        for sel, value in (("#submit-shared", shared), ("#submit-params", params)):
            el = self.q(sel)
            el.clear()
            el.send_keys(json.dumps(value))
        self.q("#submit-go").click()
        self.wait("the new job's page", lambda: "#/jobs/" in self.d.current_url and self.q("#job-status"))
        return self.d.current_url.rsplit("/", 1)[1]


# What a person with a screen reader, a keyboard or weak eyes needs of a page, checked in it: every
# visible control has a name (a <label>, aria-label(ledby), or a button's text); every visible text
# has a contrast of at least 4.5:1 with the background it is drawn on (3:1 when large: 24 px, or
# 18.66 px bold), disabled controls aside (WCAG 1.4.3 exempts them); the graphs' SVG is Graphviz's
# and not checked. Returns a list of problems.
AUDIT_JS = r"""
const problems = [];
const visible = (el) => { const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'; };
const nameOf = (el) => {
  const by = el.getAttribute('aria-labelledby');
  if (by) return by.split(/\s+/).map((i) => (document.getElementById(i) || {}).textContent || '').join(' ').trim();
  if (el.getAttribute('aria-label')) return el.getAttribute('aria-label').trim();
  if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(' ').trim();
  if (el.tagName === 'BUTTON' || el.tagName === 'A' || el.tagName === 'SUMMARY') return el.textContent.trim();
  return el.getAttribute('title') || '';
};
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href], summary')) {
  if (visible(el) && !nameOf(el)) problems.push('no name: ' + el.outerHTML.slice(0, 120));
}
const rgba = (c) => { const m = c.match(/[\d.]+/g).map(Number); return m.length === 3 ? [...m, 1] : m; };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
  if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; };
for (const el of document.querySelectorAll('body *')) {
  if (el.closest('svg') || el.closest('[hidden]') || !visible(el)) continue;
  if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  if (el.closest(':disabled')) continue;
  const cs = getComputedStyle(el);
  if (parseFloat(cs.opacity) < 1) continue;
  const fg = rgba(cs.color), bg = bgOf(el);
  const a = lum(fg), b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const px = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
  const need = px >= 24 || (bold && px >= 18.66) ? 3 : 4.5;
  if (ratio < need) problems.push('contrast ' + ratio.toFixed(2) + ' < ' + need + ': ' + el.tagName.toLowerCase()
    + (el.id ? '#' + el.id : '') + '.' + el.className + ' "' + el.textContent.trim().slice(0, 40) + '"');
}
for (const [sel, what] of [['header', 'a banner (header)'], ['nav[aria-label]', 'a named navigation'],
                           ['main', 'a main'], ['footer', 'a contentinfo (footer)']]) {
  if (document.querySelectorAll(sel).length !== 1) problems.push('not one ' + what);
}
return problems;
"""


def audit(p, page):
    """The page's accessibility problems (AUDIT_JS) and, at a phone's width, anything wider than the
    window; fails with all of them."""
    problems = p.d.execute_script(AUDIT_JS)
    width = p.d.execute_script("return document.documentElement.scrollWidth;")
    inner = p.d.execute_script("return window.innerWidth;")
    if width > inner:
        wide = p.d.execute_script("""return [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1
                    && !e.closest('.scroll, .graph, ol.code'))
            .slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className);""")
        problems.append("%d px wide in a %d px window: %s" % (width, inner, wide))
    assert not problems, page + ":\n  " + "\n  ".join(problems)


FOCUS_JS = r"""
const el = arguments[0], s = getComputedStyle(el);
const rgba = (c) => { const m = c.match(/[\d.]+/g).map(Number); return m.length === 3 ? [...m, 1] : m; };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
let bg = [255, 255, 255, 1];
for (let e = el.parentElement; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
  if (c[3] > 0.5) { bg = c; break; } }
const a = lum(rgba(s.outlineColor)), b = lum(bg);
return [s.outlineStyle, parseFloat(s.outlineWidth), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
"""


def focus_is_visible(p, n=8):
    """Tabs through the first n controls: each one focused shows an outline of 2 px or more with a
    contrast of 3:1 or more against what is around it (WCAG 1.4.11)."""
    p.q("body").send_keys(Keys.TAB)
    for _ in range(n):
        el = p.d.switch_to.active_element
        style, width, ratio = p.d.execute_script(FOCUS_JS, el)
        assert style != "none" and width >= 2 and ratio >= 3, (
            "no visible focus on %s: %s %s px, contrast %.2f" % (
                el.get_attribute("outerHTML")[:100], style, width, ratio))
        el.send_keys(Keys.TAB)


def d_title(p):
    return p.d.execute_script("return document.title;")


def answer(p, value, steps_before):
    """Clicks the choice button of value once the job waits after more than steps_before steps."""
    p.wait("the job waiting (after %d steps)" % steps_before,
           lambda: p.job_status() == "waiting" and p.q("button.choice[data-value='\"%s\"']" % value)
           and len(p.d.find_elements(By.CSS_SELECTOR, "#timeline li.step")) > steps_before)
    n = len(p.d.find_elements(By.CSS_SELECTOR, "#timeline li.step"))
    p.click("the answer " + value, "button.choice[data-value='\"%s\"']" % value)
    return n


def test_recipe(p):
    id_ = p.submit("recipe", {"ingredient": "tofu"}, {"recipes_api": p.run.mock_url})
    p.wait("the job waiting with its prompt", lambda: p.job_status() == "waiting"
           and "How about" in (p.text("#ask-prompt") or ""))
    p.shot("job-waiting")
    n = answer(p, "no", 0)
    p.wait("the rejection in the timeline", lambda: p.q("#timeline li[data-node='reject']"))
    answer(p, "yes", n)
    p.wait("the job succeeded", lambda: p.job_status() == "succeeded")
    assert d_title(p).startswith("Job " + id_[:12]), d_title(p)
    said = p.q("#job-said")  # what a screen reader is told, in a region kept across updates
    assert said.get_attribute("role") == "status" and said.get_attribute("data-status") == "succeeded", \
        said.get_attribute("outerHTML")
    p.wait("shared.final in the store", lambda: "final" in (p.text("#shared-tree") or ""))
    status, shared = call(p.run.base, p.run.keys["admin"], "GET", "/v1/jobs/%s/shared" % id_)
    assert status == 200 and shared.get("final"), shared
    tree = p.text("#shared-tree")
    assert json.dumps(shared["final"]) in tree, (tree, shared["final"])
    assert len(shared["rejected"]) == 1 and json.dumps(shared["rejected"][0]) not in tree, tree
    p.click("the rejected list", "#shared-tree details[data-path='/rejected'] > summary")
    p.wait("the rejected list open", lambda: json.dumps(shared["rejected"][0]) in p.text("#shared-tree"))
    assert p.q("#job-cancel") is None, "an ended job offers no cancel"
    visits = p.text("#visits")
    assert "suggest ×2" in visits and "approve ×2" in visits, visits
    p.shot("job-succeeded")
    return id_


def test_failure(p):
    status, body = call(p.run.base, p.run.keys["admin"], "PUT", "/v1/flows/broken", BROKEN)
    assert status in (200, 201), body
    p.submit("broken", {}, {})
    p.wait("the job failed", lambda: p.job_status() == "failed")
    p.wait("the error at its node", lambda: p.q("#job-error") and "fetch" in p.text("#job-error"))
    err = p.text("#job-error")
    assert "At node fetch" in err and "outbound" in err, err
    step = p.q("#timeline li.step.failed[data-node='fetch'] .error")
    assert step is not None and "outbound" in step.text, "no failed step at fetch in the timeline"
    svg = p.q("#job-graph svg")
    if svg is not None:  # the server draws graphs: the node is marked failed
        assert p.q("#job-graph svg #node-fetch.ui-failed") is not None, "fetch not marked in the graph"
    else:
        assert "fetch" in p.text("#job-graph pre.mermaid")
    p.shot("job-failed")
    return p.d.current_url.rsplit("/", 1)[1]


def test_editor(p):
    p.go("#/flows")
    p.wait("the flows list", lambda: p.q("#flows-table a[href='#/flows/recipe']"))
    p.shot("flows")
    p.go("#/flows/recipe")
    p.wait("the flow's document", lambda: p.q("#doc-lines") and p.q("#flow-graph").text != ""
           or p.q("#flow-graph svg"))
    p.shot("flow")
    p.wait("the editor", lambda: p.q("#flow-edit"))
    p.click("the editor's summary", "#flow-edit summary")
    area = p.q("#flow-editor")
    text = area.get_property("value")
    doc = json.loads(text)
    doc["nodes"]["init"]["next"]["default"] = "nowhere"
    bad = json.dumps(doc, indent=2)
    line = next(i + 1 for i, t in enumerate(bad.split("\n")) if '"nowhere"' in t)
    p.d.execute_script("arguments[0].value = arguments[1];", area, bad)
    p.click("save", "#flow-save")
    p.wait("the problem shown", lambda: p.q("#flow-problems li.bad .problem"))
    marked = p.q("#flow-problems li.bad")
    assert marked.get_attribute("data-line") == str(line), (marked.get_attribute("data-line"), line)
    assert "/nodes/init/next/default" in marked.text and "nowhere" in marked.text, marked.text
    p.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", marked)
    p.shot("flow-problem")
    status, flow = call(p.run.base, p.run.keys["admin"], "GET", "/v1/flows/recipe")
    assert flow["document"]["nodes"]["init"]["next"]["default"] == "fetch", "the bad document was taken"


def test_service(p):
    p.go("#/service")
    p.wait("the figures", lambda: p.text("#svc-started") not in (None, "", "0")
           and p.text("#svc-rate") not in (None, "…"))
    assert p.text("#svc-started") == "2", p.text("#svc-started")
    assert p.text("#svc-failed").startswith("1 of 2"), p.text("#svc-failed")
    p.shot("service")


def test_fork(p, job_id):
    p.go("#/jobs/" + job_id)
    p.click("fork after step 1", "#timeline li.step[data-seq='1'] button.fork")
    p.wait("the fork's page", lambda: job_id not in p.d.current_url and p.q("#job-forked-from"))
    new_id = p.d.current_url.rsplit("/", 1)[1]
    text = p.text("#job-forked-from")
    assert job_id in text and "after step 1" in text, text
    p.wait("the fork waiting at approve", lambda: p.job_status() == "waiting"
           and "How about" in (p.text("#ask-prompt") or ""))
    status, job = call(p.run.base, p.run.keys["admin"], "GET", "/v1/jobs/" + new_id)
    assert status == 200 and job["forked_from"] == {"job": job_id, "step": 1}, job
    status, hist = call(p.run.base, p.run.keys["admin"], "GET", "/v1/jobs/%s/history" % new_id)
    assert [s["node"] for s in hist["steps"]] == ["fetch", "suggest"], hist["steps"]
    p.shot("job-forked")
    status, _ = call(p.run.base, p.run.keys["admin"], "POST", "/v1/jobs/%s/cancel" % new_id, {})
    assert status == 202, status


def test_redrive(p, failed_id):
    """Redrives the failed job from its page: refused readably while the flow lacks its node, then,
    after fixing the flow in the editor, a new job that says where it came from and succeeds."""
    gone = {"name": "broken", "start": "done", "nodes": {"done": {"type": "set", "params": {"/ok": True}}}}
    status, body = call(p.run.base, p.run.keys["admin"], "PUT", "/v1/flows/broken", gone)
    assert status == 200, body
    p.go("#/jobs/" + failed_id)
    p.wait("the failed job", lambda: p.job_status() == "failed")
    p.click("Redrive", "#job-redrive")
    p.wait("the refusal", lambda: "node_gone" in (p.text("#redrive-error") or ""))
    err = p.text("#redrive-error")
    assert "no longer in its flow" in err, err
    assert p.d.current_url.endswith("#/jobs/" + failed_id), "a refused redrive left the job's page"
    p.shot("redrive-refused")
    # the fix, in the page's editor: fetch becomes a set node
    p.go("#/flows/broken")
    p.wait("the editor", lambda: p.q("#flow-edit"))
    p.click("the editor's summary", "#flow-edit summary")
    fixed = dict(BROKEN)
    fixed["nodes"] = dict(BROKEN["nodes"])
    fixed["nodes"]["fetch"] = {"type": "set", "params": {"/got": "fixed"}, "next": {"default": "done"}}
    p.d.execute_script("arguments[0].value = arguments[1];", p.q("#flow-editor"), json.dumps(fixed, indent=2))
    p.click("save", "#flow-save")
    p.wait("the flow saved", lambda: "Saved flow broken" in (p.text("#notice") or ""))
    p.go("#/jobs/" + failed_id)
    p.wait("the failed job", lambda: p.job_status() == "failed")
    p.click("Redrive", "#job-redrive")
    p.wait("the new job's page", lambda: "#/jobs/" in p.d.current_url
           and not p.d.current_url.endswith(failed_id) and p.q("#job-origin"))
    new_id = p.d.current_url.rsplit("/", 1)[1]
    p.wait("the redriven job succeeded", lambda: p.job_status() == "succeeded")
    origin = p.q("#job-origin")
    assert ("Redriven from job %s at node fetch" % failed_id) in origin.text, origin.text
    link = origin.find_element(By.CSS_SELECTOR, "a")
    assert link.get_attribute("href").endswith("#/jobs/" + failed_id), link.get_attribute("href")
    assert p.q("#job-redrive") is None, "a succeeded job offers no redrive"
    status, job = call(p.run.base, p.run.keys["admin"], "GET", "/v1/jobs/" + new_id)
    assert job["redriven_from"] == {"job": failed_id, "node": "fetch"}, job["redriven_from"]
    status, shared = call(p.run.base, p.run.keys["admin"], "GET", "/v1/jobs/%s/shared" % new_id)
    assert shared.get("got") == "fixed" and shared.get("ok") is True, shared
    p.shot("job-redriven")
    return new_id


def test_roles(p, job_id, failed_id):
    for role in ("submit", "read"):
        p.d.delete_all_cookies()
        p.go("#/jobs")
        p.d.execute_script("sessionStorage.clear();")
        p.d.refresh()
        p.give_key(p.run.keys[role])
        assert ("role " + role) in p.text("#who"), p.text("#who")
        p.wait("the jobs table", lambda: p.q("#jobs-table tr[data-id='%s']" % job_id))
        assert (p.q("#submit-form") is not None) == (role == "submit"), role + ": the submit form"
        p.go("#/jobs/" + job_id)
        p.wait("the job's timeline", lambda: p.q("#timeline li.step[data-seq='1']"))
        assert (p.q("#timeline button.fork") is not None) == (role == "submit"), role + ": fork"
        assert not p.q("#nav-service").is_displayed(), role + ": the service page is admin's"
        p.go("#/jobs/" + failed_id)
        p.wait("the failed job", lambda: p.job_status() == "failed" and p.q("#job-error"))
        assert (p.q("#job-redrive") is not None) == (role == "submit"), role + ": the Redrive button"
        p.go("#/flows/recipe")
        p.wait("the flow's document", lambda: p.q("#doc-lines"))
        assert p.q("#flow-edit") is None and p.q("#flow-editor") is None, role + " sees the editor"
        p.shot("flow-" + role)
    # no key in any URL the page asked for
    urls = p.d.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    for k in p.run.keys.values():
        assert not any(k in u for u in urls), "a key in a URL"


def main():
    run = Run()
    run.start()
    d = None
    try:
        d = browser(1280, 1400)
        p = Page(d, run)
        d.get(run.base + "/")
        p.wait("the redirect to /ui/", lambda: d.current_url.startswith(run.base + "/ui/"))
        p.shot("key")
        p.give_key(run.keys["admin"])
        assert p.text("#who").startswith("key ui-admin"), p.text("#who")
        job_id = test_recipe(p)
        failed_id = test_failure(p)
        test_editor(p)
        test_service(p)
        p.go("#/jobs")
        p.wait("the jobs table", lambda: p.q("#jobs-table tr[data-id='%s']" % job_id))
        p.wait("the counts", lambda: p.text("[data-count='succeeded']") == "1")
        p.shot("jobs")
        test_redrive(p, failed_id)
        p.go("#/jobs")
        p.wait("the counts, live", lambda: p.text("[data-count='succeeded']") == "2"
               and p.text("[data-count='failed']") == "1")
        # every page on a laptop and on a phone: named controls, contrast, landmarks, nothing
        # wider than the window (tables scroll in their box)
        pages = [
            ("jobs", "#/jobs", lambda: p.q("#jobs-table tr[data-id='%s']" % job_id)),
            ("job", "#/jobs/" + job_id, lambda: p.job_status() == "succeeded" and p.q("#history")),
            ("job-failed", "#/jobs/" + failed_id, lambda: p.q("#job-redrive") and p.q("#history")),
            ("flows", "#/flows", lambda: p.q("#flows-table a[href='#/flows/recipe']")),
            ("flow", "#/flows/recipe", lambda: p.q("#doc-lines") and p.q("#flow-edit")),
            ("service", "#/service", lambda: p.text("#svc-rate") not in (None, "…")),
        ]
        for width, height, suffix in ((1280, 1400, ""), (390, 844, "-phone")):
            d.set_window_size(width, height)
            for name, hash_, ready in pages:
                p.go(hash_)
                p.wait(name + suffix, ready)
                for el in d.find_elements(By.CSS_SELECTOR, "details:not([open]) > summary"):
                    el.click()
                audit(p, name + " at %d px" % width)
                for box in d.find_elements(By.CSS_SELECTOR, ".scroll"):  # the keyboard can scroll it
                    assert box.get_attribute("tabindex") == "0" and box.get_attribute("aria-label"), name
                if suffix:
                    d.execute_script("window.scrollTo(0, 0);")
                    p.shot(name + suffix)
            p.go("#/jobs")
            p.wait("the jobs", pages[0][2])
            box = d.execute_script("""const b = document.querySelector('#jobs-table').parentElement;
                return [getComputedStyle(b).overflowX, b.scrollWidth, b.clientWidth];""")
            assert box[0] in ("auto", "scroll"), "the jobs table's box does not scroll: %r" % box
            if suffix:
                assert box[1] > box[2], "the jobs table fits a phone? %r" % box
            focus_is_visible(p)
        d.set_window_size(1280, 1400)
        test_fork(p, job_id)
        test_roles(p, job_id, failed_id)
        p.console()
        assert not p.problems, "errors in the console:\n" + "\n".join(p.problems)
        print("test_ui: ok (screenshots in %s)" % SHOTS)
        return 0
    finally:
        if d is not None:
            d.quit()
        run.stop()


if __name__ == "__main__":
    sys.exit(main())
