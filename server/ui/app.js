/* app.js: flowd's dashboard. A small hash-routed page (#/jobs, #/jobs/<id>, #/flows, #/flows/<name>,
 * #/service) that uses only the public API (api/openapi.yaml), so it is also an example of it:
 *   - the key the person gives is kept in sessionStorage (this tab only) and sent as
 *     "Authorization: Bearer <key>", never in a URL; GET /v1/key says its role, and the page shows
 *     only what that role may do (answer, cancel and redrive need submit, the flow editor and
 *     /metrics admin);
 *   - a job is followed by long polls (GET /v1/jobs/{id}?wait with If-None-Match: its ETag), since
 *     EventSource cannot send an Authorization header; lists are polled;
 *   - data goes into the page as text (textContent), never as markup; the graphs' SVG is parsed as
 *     XML and cleaned of scripts, event handlers and links before it is shown.
 * No framework, no build step: this file is served as it is. */
'use strict';

const KEY_STORE = 'flowd.key';
const STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'canceled'];
const ENDED = new Set(['succeeded', 'failed', 'canceled']);
const LIST_POLL_MS = 2000;
const JOB_WAIT_S = 25;
const ROLE_RANK = { none: 0, read: 1, submit: 2, admin: 3 };

/* What GET /v1/key said of the caller; null until it answered. */
let me = null;
/* Each view gets a generation; its loops stop once another view has taken the page. */
let gen = 0;
let aborter = new AbortController();

/* ---- small helpers ---- */

/* An element with attributes (on* are listeners) and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function $(sel, root) { return (root || document).querySelector(sel); }

function may(role) { return me !== null && ROLE_RANK[me.role] >= ROLE_RANK[role]; }

/* RFC 3339 with microseconds to milliseconds since 1970 (Date.parse reads three digits). */
function ms(t) {
  if (!t) return null;
  return Date.parse(t.replace(/(\.\d{3})\d+/, '$1'));
}

function fmtTime(t) {
  const v = ms(t);
  if (v === null || Number.isNaN(v)) return '';
  const d = new Date(v);
  return d.toLocaleString(undefined, { hour12: false });
}

function fmtDur(m) {
  if (m === null || m === undefined || Number.isNaN(m)) return '';
  if (m < 1) return m.toFixed(2) + ' ms';
  if (m < 1000) return Math.round(m) + ' ms';
  if (m < 60000) return (m / 1000).toFixed(m < 10000 ? 2 : 1) + ' s';
  const s = Math.round(m / 1000);
  return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
}

function jobDuration(job) {
  const a = ms(job.started_at);
  if (a === null) return null;
  const b = job.finished_at ? ms(job.finished_at) : Date.now();
  return b - a;
}

function notice(text, kind) {
  const n = $('#notice');
  n.textContent = text || '';
  n.className = kind || '';
}

function badge(status) {
  return h('span', { class: 'badge st-' + status }, status);
}

/* ---- the API ---- */

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? e.message : 'HTTP ' + status);
    this.status = status;
    this.code = e ? e.code : null;
    this.body = body;
  }
}

/* One call: opts.json is sent as the body, opts.headers added; answers {status, body, etag, res}.
 * Statuses of opts.expect (and 2xx) are answers, others throw ApiError; a 401 asks for a key. */
async function api(path, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = 'Bearer ' + key;
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = typeof opts.json === 'string' ? opts.json : JSON.stringify(opts.json);
  }
  const res = await fetch(path, {
    method: opts.method || 'GET', headers, body, cache: 'no-store',
    signal: opts.signal || aborter.signal, credentials: 'omit',
  });
  const type = res.headers.get('Content-Type') || '';
  let data = null;
  if (res.status !== 304 && res.status !== 204) {
    data = type.startsWith('application/json') ? await res.json() : await res.text();
  }
  const expect = opts.expect || [];
  if (!res.ok && res.status !== 304 && !expect.includes(res.status)) {
    if (res.status === 401) askKey('The key was refused (401): ' + ((data && data.error && data.error.message) || ''));
    throw new ApiError(res.status, data);
  }
  return { status: res.status, body: data, etag: res.headers.get('ETag'), res };
}

function isAbort(e) { return e && e.name === 'AbortError'; }

/* ---- the key ---- */

function askKey(why) {
  const p = $('#key-panel');
  p.hidden = false;
  if (why) $('#key-why').textContent = why;
  $('#key-input').focus();
}

async function whoAmI() {
  try {
    const r = await api('/v1/key', { expect: [401] });
    if (r.status === 401) {
      me = null;
      askKey(sessionStorage.getItem(KEY_STORE)
        ? 'This key is not one of this flowd\'s. Give another.'
        : 'This flowd needs an API key. It is kept in this tab only (sessionStorage) and sent as the Authorization header.');
      $('#who').textContent = 'no key';
      return false;
    }
    me = r.body;
    $('#key-panel').hidden = true;
    $('#key-forget').hidden = me.auth === 'open';
    $('#who').textContent = me.auth === 'open'
      ? 'open (no keys): admin'
      : 'key ' + me.name + ' · role ' + me.role + ' · tenant ' + me.tenant;
    $('#nav-service').parentElement.hidden = !may('admin');
    return true;
  } catch (e) {
    notice('Cannot reach flowd: ' + e.message, 'error');
    return false;
  }
}

/* ---- the graph (SVG from the server, or the Mermaid text) ---- */

/* The SVG text as an element, without scripts, handlers, foreign objects or links. */
function cleanSvg(text) {
  const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
  const svg = doc.documentElement;
  if (!svg || svg.nodeName.toLowerCase() !== 'svg' || doc.querySelector('parsererror')) return null;
  for (const bad of svg.querySelectorAll('script, foreignObject, iframe, style')) bad.remove();
  for (const el of [svg, ...svg.querySelectorAll('*')]) {
    for (const a of [...el.attributes]) {
      const n = a.name.toLowerCase();
      if (n.startsWith('on') || n === 'href' || n === 'xlink:href' || n === 'style') el.removeAttribute(a.name);
    }
  }
  /* its own size (Graphviz's points), shrunk to fit by the style sheet, never blown up */
  svg.setAttribute('role', 'img');
  return document.importNode(svg, true);
}

/* Fills box with the graph at path (…/graph.svg) and returns the SVG element, or shows the Mermaid
 * text when this flowd draws no SVG (a 404) and returns null. */
async function drawGraph(box, path, mermaid, label) {
  box.replaceChildren();
  try {
    const r = await api(path, { expect: [404, 406, 422, 501] });
    if (r.status === 200 && typeof r.body === 'string') {
      const svg = cleanSvg(r.body);
      if (svg) {
        svg.setAttribute('aria-label', label);
        box.append(svg);
        return svg;
      }
    }
  } catch (e) {
    if (isAbort(e)) throw e;
  }
  box.append(h('p', { class: 'muted' }, 'This flowd draws no graph picture; the graph as Mermaid text:'),
    h('pre', { class: 'mermaid', 'aria-label': label }, mermaid || '(no graph)'));
  return null;
}

function markNode(svg, name, cls) {
  if (!svg || !name) return;
  const el = svg.querySelector('#' + CSS.escape('node-' + name));
  if (el) el.classList.add(cls);
}

/* ---- the JSON tree ---- */

/* A collapsible tree of value; open holds the paths of the containers shown open (kept across
 * updates, so that a live store does not fold back while someone reads it). */
function jsonTree(value, open, path, key) {
  const label = key === undefined ? null : h('span', { class: 'jk' }, key + ': ');
  if (value !== null && typeof value === 'object') {
    const arr = Array.isArray(value);
    const entries = arr ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    const d = h('details', { 'data-path': path });
    if (open.has(path)) d.open = true;
    /* what the person opened or closed, read after the click has toggled it (a click is also
     * what Enter and Space on a summary make); not the toggle event, which the page's own
     * re-rendering fires too */
    const summary = h('summary', null, label, h('span', { class: 'jc' },
      arr ? '[' + entries.length + ']' : '{' + entries.length + '}'));
    summary.addEventListener('click', () => setTimeout(() => {
      if (d.open) open.add(path); else open.delete(path);
    }, 0));
    d.append(summary);
    const ul = h('ul', { role: 'group' });
    for (const [k, v] of entries) ul.append(h('li', null, jsonTree(v, open, path + '/' + k, k)));
    d.append(ul);
    return d;
  }
  const type = value === null ? 'null' : typeof value;
  return h('span', { class: 'jv' }, label, h('span', { class: 'j-' + type }, JSON.stringify(value)));
}

/* ---- JSON text positions: which line each JSON Pointer's value starts on ---- */

/* The line (1-based) of each pointer's value in text, as a Map; stops quietly at a syntax error. */
function pointerLines(text) {
  const lines = new Map();
  let i = 0;
  let line = 1;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) { if (text[i] === '\n') line++; i++; }
  };
  const str = () => {
    let out = '';
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') { out += text[i + 1]; i += 2; continue; }
      out += text[i++];
    }
    i++;
    return out;
  };
  const esc = (k) => k.replace(/~/g, '~0').replace(/\//g, '~1');
  const value = (ptr) => {
    ws();
    lines.set(ptr, line);
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) {
        ws();
        if (text[i] !== '"') throw new Error('key');
        const keyLine = line;
        const k = str();
        ws(); i++; /* : */
        const p = ptr + '/' + esc(k);
        value(p);
        lines.set(p, Math.min(lines.get(p), keyLine));
        ws();
        if (text[i] === ',') { i++; continue; }
        i++; return;
      }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (let n = 0; ; n++) {
        value(ptr + '/' + n);
        ws();
        if (text[i] === ',') { i++; continue; }
        i++; return;
      }
    } else if (c === '"') {
      str();
    } else {
      while (i < text.length && !/[\s,\]}]/.test(text[i])) i++;
    }
  };
  try { value(''); } catch (e) { /* what was read so far */ }
  return lines;
}

/* The line of ptr, or of the nearest parent that text has. */
function lineOf(lines, ptr) {
  let p = ptr;
  for (;;) {
    if (lines.has(p)) return lines.get(p);
    if (p === '') return 1;
    p = p.slice(0, p.lastIndexOf('/'));
  }
}

/* ---- views ---- */

function startView() {
  gen++;
  aborter.abort();
  aborter = new AbortController();
  notice('');
  const v = $('#view');
  v.replaceChildren();
  return { g: gen, v };
}

function live(g) { return g === gen; }

function sleep(t) { return new Promise((r) => setTimeout(r, t)); }

/* The section's link marked current, and the tab's title said (a screen reader reads it when the
 * view changes): "what · flowd". */
function setSection(name, title) {
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.section === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = (title || name[0].toUpperCase() + name.slice(1)) + ' · flowd';
}

/* A table in a box that scrolls sideways on a narrow screen: a named region that the keyboard can
 * reach (tabindex), so that it can be scrolled without a mouse. */
function scrollBox(label, table) {
  return h('div', { class: 'scroll', role: 'region', 'aria-label': label + ' (scrolls sideways)', tabindex: 0 }, table);
}

/* Says a job's new status to a screen reader: one live region kept across re-renderings (the
 * job's head is drawn anew at each change, and a region drawn anew is not read). */
function sayStatus(id, status) {
  const box = $('#job-said');
  if (box && box.dataset.status !== status) {
    box.dataset.status = status;
    box.textContent = 'Job ' + id.slice(0, 12) + ' is ' + status + '.';
  }
}

/* ---- jobs ---- */

async function flowNames() {
  const names = [];
  let cursor = null;
  for (let pages = 0; pages < 20; pages++) {
    const r = await api('/v1/flows?limit=1000' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    for (const f of r.body.flows) names.push(f.name);
    cursor = r.body.next_cursor;
    if (!cursor) break;
  }
  return names;
}

function jobsQuery(f, cursor) {
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.flow) q.set('flow', f.flow);
  if (f.tenant) q.set('tenant', f.tenant);
  q.set('limit', '25');
  if (cursor) q.set('cursor', cursor);
  return '/v1/jobs?' + q;
}

/* The count by status of the jobs the list shows (its flow and tenant; not its status, so that
 * every status has its number): GET /v1/jobs/counts, which any key may read for its tenant. */
async function statusCounts(f) {
  const q = new URLSearchParams();
  if (f.flow) q.set('flow', f.flow);
  if (f.tenant) q.set('tenant', f.tenant);
  const r = await api('/v1/jobs/counts' + (q.toString() ? '?' + q : ''));
  return r.body.counts;
}

/* The counts as a list of links, each to the list filtered by its status (the one shown marked). */
function renderCounts(box, c, f) {
  box.replaceChildren(...STATUSES.map((s) => {
    const q = new URLSearchParams();
    q.set('status', s);
    if (f.flow) q.set('flow', f.flow);
    if (f.tenant) q.set('tenant', f.tenant);
    return h('li', null, h('a', { href: '#/jobs?' + q, class: 'count', 'aria-current': f.status === s ? 'true' : null,
      'aria-label': s + ': ' + (c[s] || 0) + ' jobs' }, badge(s), ' ', h('span', { 'data-count': s }, c[s] || 0)));
  }));
}

async function viewJobs(params) {
  const { g, v } = startView();
  setSection('jobs');
  const filter = { status: params.get('status') || '', flow: params.get('flow') || '',
    tenant: may('admin') ? params.get('tenant') || '' : '' };
  const cursors = [null]; /* the cursor of each page seen: Back pops one */
  const names = await flowNames();
  if (!live(g)) return;

  v.append(h('h2', null, 'Jobs'));
  const counts = h('ul', { class: 'counts', 'aria-label': 'Jobs by status' });
  v.append(counts);

  if (may('submit')) {
    const flowSel = h('select', { id: 'submit-flow', name: 'flow', required: true },
      names.map((n) => h('option', { value: n }, n)));
    const shared = h('textarea', { id: 'submit-shared', name: 'shared', rows: 3, spellcheck: 'false' }, '{}');
    const params = h('textarea', { id: 'submit-params', name: 'params', rows: 3, spellcheck: 'false' }, '{}');
    const form = h('form', { class: 'submit', id: 'submit-form' },
      h('fieldset', null, h('legend', null, 'Start a job'),
        h('div', { class: 'field' }, h('label', { for: 'submit-flow' }, 'Flow'), flowSel),
        h('div', { class: 'field grow' }, h('label', { for: 'submit-shared' }, 'Shared store (JSON)'), shared),
        h('div', { class: 'field grow' }, h('label', { for: 'submit-params' }, 'Params (JSON)'), params),
        h('button', { type: 'submit', id: 'submit-go' }, 'Start')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const req = { flow: flowSel.value };
      for (const [k, field] of [['shared', shared], ['params', params]]) {
        try { req[k] = JSON.parse(field.value || '{}'); } catch (e) {
          notice('The ' + k + ' are not JSON: ' + e.message, 'error');
          field.focus();
          return;
        }
      }
      try {
        const r = await api('/v1/jobs', { method: 'POST', json: req });
        location.hash = '#/jobs/' + r.body.id;
      } catch (e) {
        if (!isAbort(e)) notice('Not started: ' + e.message, 'error');
      }
    });
    v.append(form);
  }

  const statusSel = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any'), STATUSES.map((s) => h('option', { value: s }, s)));
  statusSel.value = filter.status;
  const flowSel = h('select', { id: 'filter-flow', name: 'flow' },
    h('option', { value: '' }, 'any'), names.map((n) => h('option', { value: n }, n)));
  flowSel.value = filter.flow;
  /* an admin's list is every tenant's, or the one named here (no API lists tenants: typed) */
  const tenantIn = may('admin') ? h('input', { id: 'filter-tenant', name: 'tenant', type: 'text', size: 12,
    placeholder: 'all', spellcheck: 'false', autocomplete: 'off', value: filter.tenant }) : null;
  const apply = () => {
    const q = new URLSearchParams();
    if (statusSel.value) q.set('status', statusSel.value);
    if (flowSel.value) q.set('flow', flowSel.value);
    if (tenantIn && tenantIn.value.trim()) q.set('tenant', tenantIn.value.trim());
    location.hash = '#/jobs' + (q.toString() ? '?' + q : '');
  };
  statusSel.addEventListener('change', apply);
  flowSel.addEventListener('change', apply);
  if (tenantIn) tenantIn.addEventListener('change', apply);
  v.append(h('div', { class: 'filters', role: 'search', 'aria-label': 'Filter the jobs' },
    h('span', { class: 'filter' }, h('label', { for: 'filter-status' }, 'Status'), statusSel),
    h('span', { class: 'filter' }, h('label', { for: 'filter-flow' }, 'Flow'), flowSel),
    tenantIn ? h('span', { class: 'filter' }, h('label', { for: 'filter-tenant' }, 'Tenant'), tenantIn) : null));

  const tbody = h('tbody');
  v.append(scrollBox('Jobs', h('table', { class: 'jobs', id: 'jobs-table' },
    h('caption', { class: 'sr' }, 'Jobs, newest first'),
    h('thead', null, h('tr', null, ['Job', 'Flow', 'Status', 'Created', 'Duration', 'Steps', 'Node']
      .map((t) => h('th', { scope: 'col' }, t)))),
    tbody)));
  const prev = h('button', { type: 'button', id: 'page-prev' }, '← Newer');
  const next = h('button', { type: 'button', id: 'page-next' }, 'Older →');
  const pageInfo = h('span', { class: 'muted' });
  v.append(h('div', { class: 'pager' }, prev, pageInfo, next));

  let nextCursor = null;
  let wake = null;
  const refresh = () => { if (wake) wake(); };
  prev.addEventListener('click', () => { if (cursors.length > 1) { cursors.pop(); refresh(); } });
  next.addEventListener('click', () => { if (nextCursor) { cursors.push(nextCursor); refresh(); } });

  while (live(g)) {
    try {
      const r = await api(jobsQuery(filter, cursors[cursors.length - 1]));
      if (!live(g)) return;
      nextCursor = r.body.next_cursor;
      tbody.replaceChildren(...r.body.jobs.map((j) => h('tr', { 'data-id': j.id, 'data-status': j.status },
        h('td', null, h('a', { href: '#/jobs/' + j.id, class: 'mono' }, j.id.slice(0, 12) + '…')),
        h('td', null, j.flow), h('td', null, badge(j.status)), h('td', null, fmtTime(j.created_at)),
        h('td', { class: 'num' }, fmtDur(jobDuration(j))), h('td', { class: 'num' }, j.steps),
        h('td', null, j.current_node || ''))));
      if (r.body.jobs.length === 0) tbody.append(h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No jobs.')));
      prev.disabled = cursors.length === 1;
      next.disabled = !nextCursor;
      pageInfo.textContent = 'page ' + cursors.length;
      const c = await statusCounts(filter);
      if (!live(g)) return;
      renderCounts(counts, c, filter);
    } catch (e) {
      if (isAbort(e)) return;
      notice('Jobs: ' + e.message, 'error');
    }
    await new Promise((res) => { wake = res; setTimeout(res, LIST_POLL_MS); });
    wake = null;
  }
}

/* ---- one job ---- */

/* The form for a waiting job from what its node asks: a button per choice, for an enum and for a
 * boolean; else a field for the value as JSON (or text for a string schema). */
function inputForm(job) {
  const asked = job.waiting_for || {};
  const schema = asked.schema || {};
  const box = h('section', { class: 'panel ask', id: 'ask', 'aria-labelledby': 'ask-title' },
    h('h3', { id: 'ask-title' }, 'Waiting for an answer'),
    h('p', { class: 'prompt', id: 'ask-prompt' }, asked.prompt || '(no prompt)'));
  const err = h('p', { class: 'error', id: 'ask-error', role: 'alert' });
  if (!may('submit')) {
    box.append(h('p', { class: 'muted' }, 'Answering needs a key with the submit role.'));
    return box;
  }
  const send = async (value) => {
    err.textContent = '';
    for (const b of box.querySelectorAll('button')) b.disabled = true;
    try {
      await api('/v1/jobs/' + job.id + '/input', { method: 'POST', json: { value } });
      notice('Answered ' + JSON.stringify(value) + '.'); /* the long poll sees the job move on */
    } catch (e) {
      if (!isAbort(e)) err.textContent = 'Not taken: ' + e.message;
    } finally {
      for (const b of box.querySelectorAll('button')) b.disabled = false;
    }
  };
  let choices = Array.isArray(asked.choices) ? asked.choices : null;
  if (!choices && Array.isArray(schema.enum)) choices = schema.enum;
  if (!choices && schema.type === 'boolean') choices = [true, false];
  if (choices) {
    box.append(h('div', { class: 'choices', role: 'group', 'aria-label': 'Answers' },
      choices.map((c) => h('button', { type: 'button', class: 'choice', 'data-value': JSON.stringify(c),
        onclick: () => send(c) }, typeof c === 'string' ? c : JSON.stringify(c)))));
  } else {
    const asText = schema.type === 'string';
    const field = h(asText ? 'input' : 'textarea', { id: 'ask-value', name: 'value', rows: 4, spellcheck: 'false' });
    const form = h('form', null, h('label', { for: 'ask-value' }, asText ? 'Answer' : 'Answer (JSON)'), field,
      h('button', { type: 'submit', id: 'ask-send' }, 'Send'));
    if (asked.schema) form.append(h('details', null, h('summary', null, 'JSON Schema of the answer'),
      h('pre', null, JSON.stringify(asked.schema, null, 2))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (asText) return send(field.value);
      let value;
      try { value = JSON.parse(field.value); } catch (e) { err.textContent = 'Not JSON: ' + e.message; return; }
      send(value);
    });
    box.append(form);
  }
  box.append(err);
  return box;
}

/* A new job from the store after a root-level step that succeeded, going on after it (POST
 * /v1/jobs/{id}/fork); the page moves to it. The server says why when it cannot (a step the flow
 * ends after, a store no longer kept, the memory store). */
function forkButton(job, s) {
  return h('button', { type: 'button', class: 'link fork', 'data-seq': s.seq,
    title: 'A new job from the shared store after step ' + s.seq + ', going on at the node after it',
    onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        const r = await api('/v1/jobs/' + job.id + '/fork', { method: 'POST', json: { step: s.seq } });
        location.hash = '#/jobs/' + r.body.id;
      } catch (e) {
        if (!isAbort(e)) notice('Not forked: ' + e.message, 'error');
        ev.target.disabled = false;
      }
    } }, 'Fork from here');
}

function timeline(job, steps) {
  const box = h('ol', { class: 'timeline', id: 'timeline', 'aria-label': 'Steps, oldest first' });
  if (steps.length === 0) {
    box.append(h('li', { class: 'muted' }, 'No finished steps yet.'));
    return box;
  }
  const t0 = Math.min(...steps.map((s) => ms(s.started_at)));
  const t1 = Math.max(...steps.map((s) => ms(s.finished_at)), t0 + 1);
  for (const s of steps) {
    const a = ms(s.started_at);
    const d = ms(s.finished_at) - a;
    const bar = h('span', { class: 'bar' + (s.error ? ' failed' : '') });
    /* CSSOM, not a style attribute: the CSP allows the one and not the other */
    bar.style.marginLeft = ((a - t0) / (t1 - t0) * 100).toFixed(2) + '%';
    bar.style.width = Math.max(0.5, d / (t1 - t0) * 100).toFixed(2) + '%';
    const li = h('li', { class: 'step' + (s.error ? ' failed' : ''), 'data-node': s.node, 'data-seq': s.seq },
      h('span', { class: 'what' }, h('b', null, s.seq + '. ' + s.node),
        s.action ? ' → ' + s.action : '', ' · ', fmtDur(d),
        s.tries > 1 ? ' · ' + s.tries + ' tries' : '',
        s.depth === 0 && s.action !== null && may('submit') ? [' · ', forkButton(job, s)] : ''),
      h('span', { class: 'track', 'aria-hidden': 'true' }, bar));
    if (s.error) li.append(h('span', { class: 'error' }, (s.error.code || 'error') + ': ' + (s.error.message || '')));
    box.append(li);
  }
  return box;
}

function historyTable(steps) {
  return scrollBox('History', h('table', { class: 'history', id: 'history' },
    h('caption', { class: 'sr' }, 'History'),
    h('thead', null, h('tr', null, ['#', 'Node', 'Action', 'Tries', 'Started', 'Took', 'Error']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, steps.map((s) => h('tr', null,
      h('td', { class: 'num' }, s.seq), h('td', null, s.node), h('td', null, s.action === null ? '' : s.action),
      h('td', { class: 'num' }, s.tries), h('td', null, fmtTime(s.started_at)),
      h('td', { class: 'num' }, fmtDur(ms(s.finished_at) - ms(s.started_at))),
      h('td', { class: 'error' }, s.error ? (s.error.code || '') + ': ' + (s.error.message || '') : ''))))));
}

async function viewJob(id) {
  const { g, v } = startView();
  setSection('jobs', 'Job ' + id.slice(0, 12));
  const open = new Set(['']); /* the store's open containers: the root at first */
  v.append(h('p', null, h('a', { href: '#/jobs' }, '← Jobs')));
  const head = h('section', { class: 'panel', id: 'job-head', 'aria-labelledby': 'job-title' });
  const ask = h('div');
  const graphBox = h('div', { class: 'graph', id: 'job-graph' });
  const visits = h('ul', { class: 'visits', id: 'visits', 'aria-label': 'Visits by node' });
  const steps = h('div');
  const store = h('div', { class: 'tree', id: 'shared-tree' });
  const hist = h('div');
  v.append(h('p', { class: 'sr', id: 'job-said', role: 'status' }), head, ask,
    h('div', { class: 'cols' },
      h('section', { class: 'panel', 'aria-labelledby': 'graph-title' }, h('h3', { id: 'graph-title' }, 'Graph'), graphBox, visits),
      h('section', { class: 'panel', 'aria-labelledby': 'store-title' }, h('h3', { id: 'store-title' }, 'Shared store'), store)),
    h('section', { class: 'panel', 'aria-labelledby': 'tl-title' }, h('h3', { id: 'tl-title' }, 'Timeline'), steps),
    h('section', { class: 'panel', 'aria-labelledby': 'hist-title' }, h('h3', { id: 'hist-title' }, 'History'), hist));

  let etag = null;
  let mermaid = null;
  let wait = 0;
  while (live(g)) {
    let r;
    const asked = performance.now();
    try {
      r = await api('/v1/jobs/' + id + (wait ? '?wait=' + wait : ''),
        { headers: etag ? { 'If-None-Match': etag } : {}, expect: [404] });
    } catch (e) {
      if (isAbort(e)) return;
      notice('Job: ' + e.message, 'error');
      await sleep(2000);
      continue;
    }
    if (!live(g)) return;
    if (r.status === 404) {
      head.replaceChildren(h('h2', { id: 'job-title' }, 'No job ' + id), h('p', null, r.body.error.message));
      return;
    }
    if (r.status === 304) { /* nothing new within the wait */
      if (performance.now() - asked < 1000) await sleep(1000); /* a server that does not hold */
      continue;
    }
    etag = r.etag;
    const job = r.body;
    try {
      const [hr, sr] = await Promise.all([api('/v1/jobs/' + id + '/history'), api('/v1/jobs/' + id + '/shared')]);
      if (mermaid === null) {
        const fr = await api('/v1/flows/' + encodeURIComponent(job.flow), { expect: [404] });
        mermaid = fr.status === 200 ? fr.body.mermaid : '';
      }
      if (!live(g)) return;
      renderJobHead(head, job);
      sayStatus(job.id, job.status);
      ask.replaceChildren(job.status === 'waiting' ? inputForm(job) : '');
      const svg = await drawGraph(graphBox, '/v1/jobs/' + id + '/graph.svg', mermaid, 'The graph of flow ' + job.flow);
      if (!live(g)) return;
      markNode(svg, job.current_node, job.status === 'failed' ? 'ui-failed' : 'ui-current');
      if (job.error && job.error.node) markNode(svg, job.error.node, 'ui-failed');
      const count = {};
      for (const s of hr.body.steps) count[s.node] = (count[s.node] || 0) + 1;
      visits.replaceChildren(...Object.entries(count).map(([n, c]) => h('li', { 'data-node': n,
        class: n === job.current_node ? 'current' : null }, h('span', null, n), ' ', h('b', null, '×' + c))));
      if (hr.body.totals && hr.body.totals.dropped) {
        visits.append(h('li', { class: 'muted' }, '(' + hr.body.totals.dropped + ' earlier steps no longer kept)'));
      }
      steps.replaceChildren(timeline(job, hr.body.steps));
      store.replaceChildren(jsonTree(sr.body, open, ''));
      hist.replaceChildren(historyTable(hr.body.steps));
    } catch (e) {
      if (isAbort(e)) return;
      notice('Job: ' + e.message, 'error');
    }
    /* an ended job changes no more; a waiting one waits for the person: still poll, it may be
     * answered elsewhere */
    if (ENDED.has(job.status)) return;
    wait = JOB_WAIT_S;
  }
}

function renderJobHead(head, job) {
  const dl = h('dl', { class: 'facts' });
  const fact = (k, val) => dl.append(h('div', null, h('dt', null, k), h('dd', null, val)));
  fact('Status', h('span', { id: 'job-status', 'data-status': job.status }, badge(job.status)));
  fact('Flow', h('a', { href: '#/flows/' + encodeURIComponent(job.flow) }, job.flow));
  fact('Node', h('span', { id: 'job-node' }, job.current_node || ''));
  fact('Steps', String(job.steps));
  fact('Created', fmtTime(job.created_at));
  fact('Started', fmtTime(job.started_at));
  fact('Finished', fmtTime(job.finished_at));
  fact('Duration', fmtDur(jobDuration(job)));
  fact('Tenant', job.tenant);
  if (job.forked_from) {
    fact('Forked from', h('span', { id: 'job-forked-from' },
      h('a', { href: '#/jobs/' + job.forked_from.job, class: 'mono' }, job.forked_from.job),
      ' after step ' + job.forked_from.step));
  }
  const kids = [h('h2', { id: 'job-title' }, 'Job ', h('span', { class: 'mono' }, job.id)), dl];
  if (job.redriven_from) kids.push(redrivenFrom(job.redriven_from));
  if (job.error) {
    kids.push(h('p', { class: 'error', id: 'job-error', role: 'alert' },
      job.error.node ? 'At node ' : '', job.error.node ? h('b', null, job.error.node) : '',
      job.error.node ? ': ' : '', job.error.code + ': ' + job.error.message));
  }
  if (!ENDED.has(job.status) && may('submit')) {
    kids.push(h('button', { type: 'button', id: 'job-cancel', class: 'danger', onclick: async () => {
      if (!confirm('Cancel job ' + job.id + '?')) return;
      try {
        await api('/v1/jobs/' + job.id + '/cancel', { method: 'POST', expect: [409] });
      } catch (e) {
        if (!isAbort(e)) notice('Not canceled: ' + e.message, 'error');
      }
    } }, 'Cancel job'));
  }
  if (REDRIVABLE.has(job.status) && may('submit')) kids.push(redriveControl(job));
  head.replaceChildren(...kids);
}

/* ---- redrive (README "Redrive") ---- */

const REDRIVABLE = new Set(['failed', 'canceled']);
/* The 409s of POST /v1/jobs/{id}/redrive, said for a person (the server's message follows). */
const REDRIVE_WHY = {
  not_redrivable: 'only a failed or canceled job can be redriven.',
  not_kept: 'this flowd did not keep the shared store the job would start again from (a memory store '
    + 'keeps none), so it cannot start from that step; start a new job instead.',
  node_gone: 'the node the job stopped at is no longer in its flow: put it back in the flow, or start '
    + 'a new job.',
};

/* "Redriven from <job> at node X" for a job a redrive made (the Job's redriven_from). */
function redrivenFrom(from) {
  return h('p', { id: 'job-origin' }, 'Redriven from job ',
    h('a', { href: '#/jobs/' + encodeURIComponent(from.job), class: 'mono' }, from.job),
    from.node ? [' at node ', h('b', null, from.node)] : ' at its flow\'s start');
}

/* The Redrive button of a failed or canceled job: a new job from the step that stopped, with the
 * flow as it is now; the page then shows the new job, or says why there is none. */
function redriveControl(job) {
  const err = h('p', { class: 'error', id: 'redrive-error', role: 'alert' });
  const btn = h('button', { type: 'button', id: 'job-redrive', 'aria-describedby': 'redrive-help' }, 'Redrive');
  const help = h('span', { id: 'redrive-help', class: 'muted' },
    'Starts a new job at the step that ' + (job.status === 'failed' ? 'failed' : 'was stopped')
    + ', from the shared store before it, with the flow as it is now.');
  btn.addEventListener('click', async () => {
    err.textContent = '';
    btn.disabled = true;
    try {
      const r = await api('/v1/jobs/' + job.id + '/redrive', { method: 'POST', expect: [409] });
      if (r.status === 409) {
        const e = r.body.error;
        err.textContent = 'Not redriven: ' + (REDRIVE_WHY[e.code] || '') + ' (' + e.code + ': ' + e.message + ')';
        return;
      }
      location.hash = '#/jobs/' + encodeURIComponent(r.body.id);
    } catch (e) {
      if (!isAbort(e)) err.textContent = 'Not redriven: ' + e.message;
    } finally {
      btn.disabled = false;
    }
  });
  return h('div', { class: 'redrive', id: 'redrive' }, h('div', { class: 'row' }, btn, help), err);
}

/* ---- flows ---- */

async function viewFlows() {
  const { g, v } = startView();
  setSection('flows');
  v.append(h('h2', null, 'Flows'));
  const tbody = h('tbody');
  v.append(scrollBox('Flows', h('table', { id: 'flows-table' },
    h('caption', { class: 'sr' }, 'Flows'),
    h('thead', null, h('tr', null, ['Name', 'Version', 'Nodes', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody)));
  let cursor = null;
  for (let pages = 0; pages < 20 && live(g); pages++) {
    let r;
    try {
      r = await api('/v1/flows?limit=1000' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    } catch (e) {
      if (!isAbort(e)) notice('Flows: ' + e.message, 'error');
      return;
    }
    for (const f of r.body.flows) {
      tbody.append(h('tr', null, h('td', null, h('a', { href: '#/flows/' + encodeURIComponent(f.name) }, f.name)),
        h('td', null, f.version || ''), h('td', { class: 'num' }, f.nodes ? f.nodes.length : ''),
        h('td', null, f.description || '')));
    }
    cursor = r.body.next_cursor;
    if (!cursor) break;
  }
}

/* A document's text with a line number each, problems' lines marked and their messages beside. */
function numbered(text, problems) {
  const lines = pointerLines(text);
  const at = new Map();
  for (const p of problems || []) {
    const n = lineOf(lines, p.where);
    if (!at.has(n)) at.set(n, []);
    at.get(n).push(p);
  }
  const ol = h('ol', { class: 'code', id: 'doc-lines' });
  text.split('\n').forEach((t, i) => {
    const here = at.get(i + 1);
    const li = h('li', { class: here ? 'bad' : null, 'data-line': i + 1 }, h('code', null, t || ' '));
    if (here) {
      for (const p of here) li.append(h('span', { class: 'problem', role: 'note' }, p.where + ': ' + p.message));
    }
    ol.append(li);
  });
  return ol;
}

/* Lua code kept readably: the document's code member and any node's. */
function luaParts(doc) {
  const parts = [];
  if (typeof doc.code === 'string') parts.push(['the document', doc.code]);
  for (const [n, node] of Object.entries(doc.nodes || {})) {
    const p = node && node.params;
    if (p && typeof p.code === 'string') parts.push(['node ' + n, p.code]);
  }
  return parts;
}

async function viewFlow(name) {
  const { g, v } = startView();
  setSection('flows', 'Flow ' + name);
  v.append(h('p', null, h('a', { href: '#/flows' }, '← Flows')));
  let r;
  try {
    r = await api('/v1/flows/' + encodeURIComponent(name), { expect: [404] });
  } catch (e) {
    if (!isAbort(e)) notice('Flow: ' + e.message, 'error');
    return;
  }
  if (!live(g)) return;
  if (r.status === 404) {
    v.append(h('h2', null, 'No flow ' + name), h('p', null, r.body.error.message));
    return;
  }
  const flow = r.body;
  v.append(h('h2', null, 'Flow ', h('span', { class: 'mono' }, flow.name)),
    h('p', null, flow.description || ''),
    h('p', { class: 'muted' }, 'version ' + (flow.version || '–') + ' · ' + flow.source + ' · ' + flow.nodes.length + ' nodes'));
  const graphBox = h('div', { class: 'graph', id: 'flow-graph' });
  v.append(h('section', { class: 'panel', 'aria-labelledby': 'fg-title' }, h('h3', { id: 'fg-title' }, 'Graph'), graphBox));
  await drawGraph(graphBox, '/v1/flows/' + encodeURIComponent(name) + '/graph.svg', flow.mermaid, 'The graph of flow ' + name);
  if (!live(g)) return;
  const doc = flow.document;
  if (!doc) {
    v.append(h('p', { class: 'muted' }, 'This flow is written in C: it has no document.'));
    return;
  }
  const text = JSON.stringify(Object.assign({}, doc, { code: undefined }), null, 2);
  const docBox = h('div', { id: 'doc-view' }, numbered(text, []));
  const sec = h('section', { class: 'panel', 'aria-labelledby': 'doc-title' }, h('h3', { id: 'doc-title' }, 'Document'), docBox);
  v.append(sec);
  for (const [where, code] of luaParts(doc)) {
    v.append(h('section', { class: 'panel lua', 'aria-label': 'Lua code of ' + where },
      h('h3', null, 'Lua code of ' + where), numbered(code, [])));
  }
  if (!may('admin')) return;

  const area = h('textarea', { id: 'flow-editor', name: 'document', rows: 24, spellcheck: 'false' },
    JSON.stringify(doc, null, 2));
  const out = h('div', { id: 'flow-problems', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', id: 'flow-save' }, 'Save (PUT)');
  const form = h('form', { class: 'editor', id: 'flow-form' },
    h('label', { for: 'flow-editor' }, 'Document (JSON): edit it and save; problems are shown at their lines'),
    area, h('div', null, save), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    const body = area.value;
    try { JSON.parse(body); } catch (e) {
      out.append(h('p', { class: 'error', role: 'alert' }, 'Not JSON: ' + e.message));
      return;
    }
    try {
      const pr = await api('/v1/flows/' + encodeURIComponent(name), { method: 'PUT', json: body, expect: [422, 409, 400] });
      if (pr.status === 422 && pr.body.error && pr.body.error.problems) {
        const ps = pr.body.error.problems;
        out.append(h('p', { class: 'error', role: 'alert' }, pr.body.error.message),
          h('ul', { class: 'problems' }, ps.map((p) => h('li', null, h('code', null, p.where), ' ', p.message))),
          numbered(body, ps));
        const first = out.querySelector('li.bad');
        if (first) first.scrollIntoView({ block: 'center' });
      } else if (pr.status >= 400) {
        out.append(h('p', { class: 'error', role: 'alert' }, pr.body.error.message));
      } else {
        route(); /* a new view clears the notice: say it after */
        notice('Saved flow ' + name + '.');
      }
    } catch (e) {
      if (!isAbort(e)) out.append(h('p', { class: 'error', role: 'alert' }, e.message));
    }
  });
  const edit = h('details', { class: 'panel', id: 'flow-edit' }, h('summary', null, 'Edit this flow'), form);
  sec.after(edit);
}

/* ---- service ---- */

function metricSum(text, name, match) {
  let sum = 0;
  const re = new RegExp('^' + name + '(\\{[^}]*\\})? ([0-9.eE+-]+)$', 'gm');
  for (const m of text.matchAll(re)) if (!match || (m[1] || '').includes(match)) sum += Number(m[2]);
  return sum;
}

async function viewService() {
  const { g, v } = startView();
  setSection('service');
  v.append(h('h2', null, 'Service'));
  if (!may('admin')) {
    v.append(h('p', null, 'The server\'s figures (/metrics) need a key with the admin role.'));
    return;
  }
  const dl = h('dl', { class: 'facts big', id: 'service-facts' });
  v.append(dl, h('p', { class: 'muted' }, 'From /metrics, read every 2 s; rates are over the last read.'));
  let last = null;
  while (live(g)) {
    try {
      const r = await api('/metrics');
      if (!live(g)) return;
      const t = r.body;
      const now = {
        at: performance.now(),
        started: metricSum(t, 'flowd_jobs_started_total'),
        failed: metricSum(t, 'flowd_jobs_finished_total', 'outcome="failed"'),
        finished: metricSum(t, 'flowd_jobs_finished_total'),
        waitSum: metricSum(t, 'flowd_job_queue_wait_seconds_sum'),
        waitCount: metricSum(t, 'flowd_job_queue_wait_seconds_count'),
        steps: metricSum(t, 'flowd_steps_total'),
      };
      const rate = (k) => last ? (now[k] - last[k]) / ((now.at - last.at) / 1000) : null;
      const dw = last ? now.waitCount - last.waitCount : 0;
      const fact = (k, val, id) => h('div', null, h('dt', null, k), h('dd', { id }, val));
      dl.replaceChildren(
        fact('Jobs started per second', last ? rate('started').toFixed(2) : '…', 'svc-rate'),
        fact('Steps per second', last ? rate('steps').toFixed(2) : '…', 'svc-steps'),
        fact('Jobs started', String(now.started), 'svc-started'),
        fact('Failed jobs', String(now.failed) + ' of ' + now.finished + ' finished', 'svc-failed'),
        fact('Mean queue wait', now.waitCount ? fmtDur(now.waitSum / now.waitCount * 1000) : '–', 'svc-wait'),
        fact('Queue wait, last 2 s', dw > 0 ? fmtDur((now.waitSum - last.waitSum) / dw * 1000) : '–', 'svc-wait-now'),
        ...STATUSES.map((s) => fact('Jobs ' + s, String(metricSum(t, 'flowd_jobs', 'status="' + s + '"')))));
      last = now;
    } catch (e) {
      if (isAbort(e)) return;
      notice('Service: ' + e.message, 'error');
    }
    await sleep(2000);
  }
}

/* ---- routing ---- */

async function route() {
  if (me === null && !(await whoAmI())) {
    startView();
    return;
  }
  const hash = location.hash.replace(/^#/, '') || '/jobs';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  let p;
  if (parts[0] === 'jobs' && parts[1]) p = viewJob(parts[1]);
  else if (parts[0] === 'flows' && parts[1]) p = viewFlow(parts[1]);
  else if (parts[0] === 'flows') p = viewFlows();
  else if (parts[0] === 'service') p = viewService();
  else p = viewJobs(params);
  p.catch((e) => { if (!isAbort(e)) notice(e.message, 'error'); });
}

document.addEventListener('DOMContentLoaded', () => {
  $('#key-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY_STORE, $('#key-input').value.trim());
    $('#key-input').value = '';
    me = null;
    if (await whoAmI()) route();
  });
  $('#key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    me = null;
    route();
  });
  /* a link followed inside the page: the keyboard and the screen reader go on from the new
   * view, not from a link that is gone */
  window.addEventListener('hashchange', () => {
    route();
    $('#view').focus({ preventScroll: false });
  });
  route();
});
