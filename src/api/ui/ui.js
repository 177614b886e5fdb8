// The page at /ui: plain JS over the control API's public routes, nothing else.
//   GET /proxies, GET /metrics (Prometheus text, parsed here) every second (every 5 s while
//   the tab is hidden), the next poll only once the previous one is done;
//   GET /events once, then GET /events/stream (server-sent events);
//   the buttons call the same routes any client calls (see docs/ui.md).
// Many proxies, many events: a card is built once and then only its changed texts are set;
// events are queued (as text) and drawn at most 4 times a second, at most MAX_DRAW at a
// time and MAX_ROWS kept.
'use strict';

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;
const MAX_ROWS = 200;
const HISTORY_S = 300;
const DRAW_MS = 250;
const MAX_DRAW = 50; // rows drawn at once: a flood shows its newest, the counter counts all

const cards = new Map(); // proxy name -> {el, f: {field: element}, last: {field: text}}
const prev = { t: 0, per: new Map() }; // the previous /metrics sample
const history = []; // {t, bytes, faults} per poll, HISTORY_S seconds
let queued = []; // events waiting for the next frame
let seen = 0;
let missed = 0;
let framePending = false;

// ------------------------------------------------------------------------------------------
// The API

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, init);
  const text = await r.text();
  if (!r.ok) {
    let why = text.trim();
    try {
      const j = JSON.parse(text);
      why = j.error || (j.errors || []).map((e) => e.description).join('; ') || why;
    } catch (_) { /* plain text */ }
    throw new Error(`${method} ${path}: ${r.status} ${why}`);
  }
  const type = r.headers.get('Content-Type') || '';
  return text && type.includes('json') ? JSON.parse(text) : text;
}

function setStatus(text, ok) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = ok ? 'ok' : '';
}

/** Runs an action of the page; its error (the API's one-line message) goes to the header. */
async function act(what, fn) {
  try {
    await fn();
    setStatus(`${what}: done`, true);
  } catch (e) {
    setStatus(e.message, false);
  }
  poll(true);
}

const q = encodeURIComponent;

// ------------------------------------------------------------------------------------------
// /metrics: Prometheus text -> per proxy counters

function parseMetrics(text) {
  const per = new Map();
  const get = (p) => {
    if (!per.has(p)) per.set(p, { up: 0, down: 0, active: 0, conns: 0, exchanges: 0, faults: 0 });
    return per.get(p);
  };
  const line = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split('\n')) {
    if (!l || l[0] === '#') continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels = {};
    for (const lm of (m[2] || '').matchAll(label)) labels[lm[1]] = lm[2].replace(/\\(.)/g, '$1');
    if (labels.proxy === undefined) continue;
    const c = get(labels.proxy);
    const v = Number(m[3]);
    switch (m[1]) {
      case 'toxiproxy_proxy_sent_bytes_total':
        if (labels.direction === 'upstream') c.up = v; else c.down = v;
        break;
      case 'vaurien_connections_active': c.active = v; break;
      case 'vaurien_connections_total': c.conns = v; break;
      case 'vaurien_exchanges_total': c.exchanges = v; break;
      case 'vaurien_faults_total': c.faults += v; break;
      default:
    }
  }
  return per;
}

/** Rates since the previous sample, per proxy and in all. */
function rates(per, t) {
  const dt = prev.t ? (t - prev.t) / 1000 : 0;
  const out = new Map();
  let bytes = 0;
  let faults = 0;
  for (const [name, c] of per) {
    const p = prev.per.get(name);
    const r = { up: 0, down: 0, exchanges: 0, faults: 0 };
    if (p && dt > 0) {
      for (const k of Object.keys(r)) r[k] = Math.max(0, c[k] - p[k]) / dt;
    }
    bytes += r.up + r.down;
    faults += r.faults;
    out.set(name, r);
  }
  if (dt > 0) {
    history.push({ t, bytes, faults });
    while (history.length && t - history[0].t > HISTORY_S * 1000) history.shift();
  }
  prev.t = t;
  prev.per = per;
  return out;
}

// ------------------------------------------------------------------------------------------
// Formatting

function human(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

function perSecond(n) {
  return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
}

function attrsText(attrs) {
  return Object.entries(attrs || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}

// ------------------------------------------------------------------------------------------
// Proxy cards

function card(name) {
  const f = {};
  const field = (key, tag, props) => { f[key] = el(tag, props); return f[key]; };
  const root = el('section', { className: 'proxy' });
  root.dataset.proxy = name;
  const enabled = field('enabled', 'input', { type: 'checkbox', className: 'enabled', title: 'enabled' });
  enabled.dataset.action = 'enable';
  const del = el('button', { type: 'button', className: 'delete', textContent: 'delete' });
  del.dataset.action = 'delete';
  root.append(el('h2', {}, el('span', { className: 'name', textContent: name }),
    field('addr', 'span', { className: 'addr' }),
    el('label', { className: 'muted' }, enabled, ' enabled'), del));

  const stat = (key, label) => el('span', {}, `${label} `, field(key, 'b', { className: `stat-${key}` }));
  root.append(el('div', { className: 'stats' },
    stat('active', 'connections open'), stat('conns', 'accepted'),
    stat('up', 'to upstream'), stat('down', 'to client'),
    stat('exchanges', 'exchanges/s'), stat('faults', 'faults/s')));

  const behaviorInput = el('input', { className: 'behavior-input', placeholder: 'delay or 50:delay,10:error', size: 24 });
  behaviorInput.setAttribute('list', 'behavior-names');
  const setBehavior = el('button', { type: 'button', className: 'behavior-set', textContent: 'set behavior' });
  setBehavior.dataset.action = 'behavior';
  root.append(el('div', { className: 'row' }, 'behavior ', field('behavior', 'b', { className: 'behavior' }),
    behaviorInput, el('input', { className: 'behavior-options', placeholder: 'options {"sleep": 1}', size: 18 }),
    setBehavior));

  const tbody = field('toxics', 'tbody', {});
  root.append(el('table', { className: 'toxics' },
    el('thead', {}, el('tr', {}, ...['toxic', 'type', 'stream', 'toxicity', 'attributes', ''].map((h) => el('th', { textContent: h })))),
    tbody));

  const type = el('select', { className: 't-type' });
  type.append(...toxicTypes().map((t) => el('option', { value: t, textContent: t, selected: t === 'latency' })));
  const stream = el('select', { className: 't-stream' },
    el('option', { value: 'downstream', textContent: 'downstream' }),
    el('option', { value: 'upstream', textContent: 'upstream' }));
  const save = el('button', { type: 'button', className: 't-save', textContent: 'add / update toxic' });
  save.dataset.action = 'toxic-save';
  root.append(el('div', { className: 'row toxic-form' },
    el('input', { className: 't-name', placeholder: 'toxic name', size: 12 }), type, stream,
    el('input', { className: 't-toxicity', type: 'number', min: 0, max: 1, step: 0.05, value: 1, title: 'toxicity' }),
    el('input', { className: 't-attrs', placeholder: 'attributes {"latency": 300}' }), save));
  return { el: root, f, last: {} };
}

let behaviorNames = [];
function toxicTypes() {
  const toxics = ['latency', 'bandwidth', 'slow_close', 'timeout', 'reset_peer', 'slicer', 'limit_data', 'packet_loss'];
  return [...new Set([...toxics, ...behaviorNames])].sort();
}

/** Sets a text only when it changed (no layout work for the unchanged). */
function put(c, key, text) {
  if (c.last[key] !== text) {
    c.last[key] = text;
    c.f[key].textContent = text;
  }
}

function toxicRows(c, name, toxics) {
  const key = JSON.stringify(toxics);
  if (c.last.toxicsJson === key) return;
  c.last.toxicsJson = key;
  c.toxics = toxics;
  const rows = toxics.map((t) => {
    const edit = el('button', { type: 'button', className: 'toxic-edit', textContent: 'edit' });
    const remove = el('button', { type: 'button', className: 'toxic-remove', textContent: 'remove' });
    edit.dataset.action = 'toxic-edit';
    remove.dataset.action = 'toxic-remove';
    const tr = el('tr', {},
      el('td', { textContent: t.name }), el('td', { textContent: t.type }),
      el('td', { textContent: t.stream }), el('td', { textContent: String(t.toxicity) }),
      el('td', { className: 'attrs', textContent: attrsText(t.attributes) }),
      el('td', {}, edit, ' ', remove));
    tr.dataset.toxic = t.name;
    return tr;
  });
  c.f.toxics.replaceChildren(...rows);
  if (!rows.length) {
    c.f.toxics.append(el('tr', {}, el('td', { className: 'muted', colSpan: 6, textContent: `no toxic on ${name}` })));
  }
}

function render(proxies, counters, r) {
  const names = Object.keys(proxies).sort();
  const container = document.getElementById('proxies');
  let added = false;
  for (const name of names) {
    if (!cards.has(name)) {
      cards.set(name, card(name));
      added = true;
    }
    const c = cards.get(name);
    const p = proxies[name];
    put(c, 'addr', `${p.listen} → ${p.upstream}${p.protocol ? ` (${p.protocol})` : ''}`);
    if (c.f.enabled.checked !== p.enabled) c.f.enabled.checked = p.enabled;
    c.el.classList.toggle('disabled', !p.enabled);
    put(c, 'behavior', p.behavior || 'dummy');
    toxicRows(c, name, p.toxics || []);
    const m = counters.get(name) || { active: 0, conns: 0, up: 0, down: 0 };
    const rate = r.get(name) || { up: 0, down: 0, exchanges: 0, faults: 0 };
    put(c, 'active', String(m.active));
    put(c, 'conns', String(m.conns));
    put(c, 'up', `${human(m.up)} (${human(rate.up)}/s)`);
    put(c, 'down', `${human(m.down)} (${human(rate.down)}/s)`);
    put(c, 'exchanges', perSecond(rate.exchanges));
    put(c, 'faults', perSecond(rate.faults));
  }
  for (const [name, c] of cards) {
    if (!(name in proxies)) {
      c.el.remove();
      cards.delete(name);
    }
  }
  if (added) container.replaceChildren(...names.map((n) => cards.get(n).el));
  document.getElementById('no-proxies').hidden = names.length > 0;
}

// ------------------------------------------------------------------------------------------
// Polling

let timer = 0;
let polling = false;
async function poll(now) {
  if (now) clearTimeout(timer);
  if (polling) return;
  polling = true;
  try {
    const [proxies, text] = await Promise.all([api('GET', '/proxies'), api('GET', '/metrics')]);
    const t = performance.now();
    const counters = parseMetrics(text);
    const r = rates(counters, t);
    render(proxies, counters, r);
    const last = history[history.length - 1] || { bytes: 0, faults: 0 };
    document.getElementById('total-bytes').textContent = `${human(last.bytes)}/s`;
    document.getElementById('total-faults').textContent = perSecond(last.faults);
    drawChart();
  } catch (e) {
    setStatus(e.message, false);
  } finally {
    polling = false;
    clearTimeout(timer);
    timer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }
}

// ------------------------------------------------------------------------------------------
// The chart: two lines on a canvas, each on its own scale

let chart = null; // the canvas's size and colors
window.addEventListener('resize', () => { chart = null; drawChart(); });

function drawChart() {
  const canvas = document.getElementById('chart');
  const g = canvas.getContext('2d');
  // Drawn at the size shown, in device pixels (sharp text at any width and zoom). The size
  // and colors are read once and on resize: reading them forces a layout of the whole page.
  if (!chart) {
    const css = getComputedStyle(document.documentElement);
    chart = {
      dpr: window.devicePixelRatio || 1,
      w: canvas.clientWidth || canvas.width,
      h: canvas.clientHeight || canvas.height,
      colors: { bytes: css.getPropertyValue('--bytes').trim(), faults: css.getPropertyValue('--faults').trim() },
    };
    canvas.width = Math.round(chart.w * chart.dpr);
    canvas.height = Math.round(chart.h * chart.dpr);
  }
  const { dpr, w, h } = chart;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const pad = 18;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#d8dde3';
  g.lineWidth = 1;
  g.strokeRect(0.5, 0.5, w - 1, h - 1);
  if (!history.length) return;
  const end = history[history.length - 1].t;
  // The time since the page opened, at least a minute, at most HISTORY_S.
  const span = Math.min(HISTORY_S * 1000, Math.max(60000, end - history[0].t));
  document.getElementById('window').textContent = `last ${Math.round(span / 1000)} s`;
  const x = (t) => w - ((end - t) / span) * w;
  const series = [['bytes', chart.colors.bytes, human], ['faults', chart.colors.faults, perSecond]];
  series.forEach(([key, color, fmt], i) => {
    const max = Math.max(1, ...history.map((s) => s[key]));
    g.strokeStyle = color;
    g.lineWidth = 1.5;
    g.beginPath();
    history.forEach((s, j) => {
      const y = h - pad / 2 - (s[key] / max) * (h - pad * 1.5);
      if (j) g.lineTo(x(s.t), y); else g.moveTo(x(s.t), y);
    });
    g.stroke();
    if (key === 'bytes') {
      g.lineTo(x(end), h);
      g.lineTo(x(history[0].t), h);
      g.globalAlpha = 0.15;
      g.fillStyle = color;
      g.fill();
      g.globalAlpha = 1;
    }
    g.fillStyle = color;
    g.font = '11px sans-serif';
    g.fillText(`max ${fmt(max)}${key === 'bytes' ? '/s' : ' faults/s'}`, 6 + i * 140, 12);
  });
}

// ------------------------------------------------------------------------------------------
// Events: history, then the live stream, drawn once per frame

/** Queues an event (its JSON text: only those drawn are parsed). */
function queue(text) {
  queued.push(text);
  seen += 1;
  // A burst larger than the list: only its newest rows could be shown anyway.
  if (queued.length > 4 * MAX_ROWS) queued = queued.slice(-MAX_ROWS);
  if (!framePending) {
    framePending = true;
    // At most DRAW_MS apart, and in an animation frame (none while the tab is hidden).
    setTimeout(() => requestAnimationFrame(flush), DRAW_MS);
  }
}

function flush() {
  framePending = false;
  const batch = queued.slice(-MAX_DRAW);
  queued = [];
  const body = document.querySelector('#events tbody');
  const frag = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i -= 1) {
    const ev = JSON.parse(batch[i]);
    const time = new Date(ev.time * 1000).toISOString().slice(11, 23);
    const tr = el('tr', {},
      el('td', { textContent: time }), el('td', { textContent: ev.proxy }),
      el('td', { textContent: String(ev.connection) }), el('td', { textContent: ev.direction || '' }),
      el('td', { textContent: ev.fault }), el('td', { textContent: ev.kind }),
      el('td', { className: 'params', textContent: JSON.stringify(ev.parameters) }));
    tr.dataset.connection = ev.connection;
    tr.dataset.kind = ev.kind;
    tr.dataset.proxy = ev.proxy;
    frag.append(tr);
  }
  body.prepend(frag);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  document.getElementById('event-count').textContent = String(seen);
  document.getElementById('event-missed').textContent = missed ? `, ${missed} missed` : '';
}

async function events() {
  try {
    const past = await api('GET', '/events');
    past.slice(-MAX_ROWS).forEach((ev) => queue(JSON.stringify(ev)));
  } catch (e) {
    setStatus(e.message, false);
  }
  const src = new EventSource('/events/stream');
  src.onmessage = (m) => queue(m.data);
  src.addEventListener('lagged', (m) => { missed += JSON.parse(m.data).missed; });
  src.onopen = () => document.body.classList.add('live');
  src.onerror = () => document.body.classList.remove('live');
}

// ------------------------------------------------------------------------------------------
// What a person can do

function onProxyClick(e) {
  const target = e.target.closest('[data-action]');
  const section = e.target.closest('section.proxy');
  if (!target || !section) return;
  const name = section.dataset.proxy;
  const c = cards.get(name);
  const path = `/proxies/${q(name)}`;
  const val = (sel) => section.querySelector(sel).value.trim();
  const json = (text) => (text ? JSON.parse(text) : {});
  const toxic = target.closest('tr') && target.closest('tr').dataset.toxic;
  switch (target.dataset.action) {
    case 'enable':
      act(`${name} ${target.checked ? 'enabled' : 'disabled'}`,
        () => api('POST', path, { enabled: target.checked }));
      break;
    case 'delete':
      act(`${name} deleted`, () => api('DELETE', path));
      break;
    case 'behavior':
      act(`${name}: behavior set`, () => api('PUT', `/behavior?proxy=${q(name)}`,
        { ...json(val('.behavior-options')), name: val('.behavior-input') || 'dummy' }));
      break;
    case 'toxic-save': {
      const t = {
        name: val('.t-name') || `${val('.t-type')}_${val('.t-stream')}`,
        type: val('.t-type'),
        stream: val('.t-stream'),
        toxicity: Number(val('.t-toxicity') || 1),
      };
      act(`${name}: toxic ${t.name} saved`, () => {
        t.attributes = json(val('.t-attrs'));
        const exists = (c.toxics || []).some((x) => x.name === t.name);
        return exists
          ? api('POST', `${path}/toxics/${q(t.name)}`, { attributes: t.attributes, toxicity: t.toxicity })
          : api('POST', `${path}/toxics`, t);
      });
      break;
    }
    case 'toxic-edit': {
      const t = (c.toxics || []).find((x) => x.name === toxic);
      if (!t) break;
      section.querySelector('.t-name').value = t.name;
      section.querySelector('.t-type').value = t.type;
      section.querySelector('.t-stream').value = t.stream;
      section.querySelector('.t-toxicity').value = t.toxicity;
      section.querySelector('.t-attrs').value = JSON.stringify(t.attributes);
      break;
    }
    case 'toxic-remove':
      act(`${name}: toxic ${toxic} removed`, () => api('DELETE', `${path}/toxics/${q(toxic)}`));
      break;
    default:
  }
}

function start() {
  document.getElementById('proxies').addEventListener('click', onProxyClick);
  document.getElementById('reset').addEventListener('click',
    () => act('reset', () => api('POST', '/reset')));
  document.getElementById('clear-events').addEventListener('click', () => act('events cleared', async () => {
    await api('DELETE', '/events');
    document.querySelector('#events tbody').replaceChildren();
  }));
  document.getElementById('new-proxy').addEventListener('submit', (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    act(`proxy ${form.get('name')} created`, () => api('POST', '/proxies', {
      name: form.get('name'), listen: form.get('listen'), upstream: form.get('upstream'), enabled: true,
    }));
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(true); });
  api('GET', '/version').then((v) => { document.getElementById('version').textContent = v.version; }, () => {});
  api('GET', '/behaviors').then((b) => {
    behaviorNames = b.behaviors;
    document.getElementById('behavior-names').replaceChildren(
      ...behaviorNames.map((n) => el('option', { value: n })));
  }, () => {}).finally(() => poll(true));
  events();
}

start();
