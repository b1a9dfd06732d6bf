// brook console: a single page over the HTTP door's own API. No framework and no build step.
// Pages: #/topics, #/topics/NAME, #/groups, #/groups/NAME, #/call, #/broker. Every element a
// test or a person may look for has a data-testid. The DOM is built with h(), never from HTML
// strings, so record bytes are only ever text on the page.
'use strict';

const HISTORY_MS = 5 * 60 * 1000;
const SAMPLE_MS = 2000;
const PAGE = 20;
const COLORS = ['#1f6feb', '#1a7f37', '#cf222e', '#9a6700', '#8250df', '#bf3989', '#0a7ea4', '#57606a'];

const main = document.getElementById('main');
const state = {
  token: localStorage.getItem('brook.token') || '',
  history: [], // [{t, topics: {name: {hw, size}}, groups: {name: lag}}]
  tail: null, // the live tail's AbortController
};

// ---- helpers -------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const svg = ['svg', 'polyline', 'line', 'text', 'rect'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'testid') el.setAttribute('data-testid', value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function headers(extra) {
  const all = Object.assign({}, extra);
  if (state.token) all.Authorization = 'Bearer ' + state.token;
  return all;
}

async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin' }, options || {});
  opts.headers = headers(opts.headers);
  const response = await fetch(path, opts);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!response.ok) {
    const message = body && body.message ? body.message : response.status + ' ' + response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

const enc = encodeURIComponent;

function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(v < 10 ? 1 : 0) + ' ' + units[i];
}

function fmtRate(v) {
  if (v === null || v === undefined) return '—';
  return v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString();
}

function fmtTime(ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

function b64(text) {
  if (text === null || text === undefined) return null;
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function toB64(text) {
  const bytes = new TextEncoder().encode(text);
  let raw = '';
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

// How bytes are shown: text, pretty JSON, or hex.
function render(bytes, mode) {
  if (bytes === null) return h('span', { class: 'null' }, 'null');
  if (mode === 'hex') {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const chunk = Array.from(bytes.slice(i, i + 16));
      lines.push(i.toString(16).padStart(6, '0') + '  ' + chunk.map((b) => b.toString(16).padStart(2, '0')).join(' '));
    }
    return h('pre', { class: 'bytes' }, lines.join('\n') || '(empty)');
  }
  let text;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch (_) {
    return render(bytes, 'hex');
  }
  if (mode === 'json') {
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON: as text */ }
  }
  return h('pre', { class: 'bytes' }, text);
}

// Bytes on one line: text when UTF-8, else hex.
function inline(bytes) {
  if (bytes === null) return 'null';
  try { return new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch (_) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
  }
}

function showError(where, error) {
  where.replaceChildren(h('p', { class: 'error', testid: 'error' }, String(error.message || error)));
}

// A line chart of series [{name, points: [[t, v]]}]: from the first sample this page took (at
// least the last minute, at most HISTORY_MS) to now.
function chart(title, series, unit, testid) {
  const width = 600, height = 140, now = Date.now();
  const first = state.history.length ? state.history[0].t : now;
  const span = Math.min(HISTORY_MS, Math.max(60 * 1000, now - first));
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t) => ((t - (now - span)) / span) * width;
  const y = (v) => height - 4 - (v / max) * (height - 20);
  const svg = h('svg', { class: 'plot', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title },
    h('line', { class: 'axis', x1: 0, y1: height - 4, x2: width, y2: height - 4 }),
    series.map((s, i) => h('polyline', {
      class: 'line',
      stroke: COLORS[i % COLORS.length],
      'vector-effect': 'non-scaling-stroke',
      points: s.points.map((p) => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' '),
      'data-points': s.points.length,
    })));
  const scale = h('div', { class: 'legend' }, `peak ${fmtRate(max)} ${unit} · last ${Math.round(span / 1000)} s`);
  const legend = h('div', { class: 'legend' }, series.map((s, i) => h('span', {},
    h('svg', { width: 10, height: 10, class: 'swatch' }, h('rect', { width: 10, height: 10, fill: COLORS[i % COLORS.length] })),
    ' ' + s.name)));
  return h('div', { class: 'panel chart', testid }, h('h2', {}, title), scale, svg, legend);
}

// ---- history (what the charts draw) --------------------------------------------------------

async function sample() {
  try {
    const [{ topics }, { groups }] = await Promise.all([api('/v1/topics'), api('/v1/groups')]);
    const entry = { t: Date.now(), topics: {}, groups: {} };
    await Promise.all(topics.slice(0, 50).map(async (t) => {
      const d = await api('/v1/topics/' + enc(t.name));
      entry.topics[t.name] = {
        hw: d.partitions.reduce((a, p) => a + p.high_watermark, 0),
        size: d.partitions.reduce((a, p) => a + p.size_bytes, 0),
      };
    }));
    await Promise.all(groups.slice(0, 50).map(async (g) => {
      const d = await api('/v1/groups/' + enc(g.group));
      entry.groups[g.group] = d.partitions.reduce((a, p) => a + p.lag, 0);
    }));
    state.history.push(entry);
    while (state.history.length && state.history[0].t < entry.t - HISTORY_MS) state.history.shift();
  } catch (_) { /* the next sample tries again */ }
}

// Records per second of each topic between consecutive samples.
function rates(pick) {
  const out = {};
  for (let i = 1; i < state.history.length; i++) {
    const a = state.history[i - 1], b = state.history[i];
    const dt = (b.t - a.t) / 1000;
    for (const [name, now] of Object.entries(b.topics)) {
      const before = a.topics[name];
      if (!before || dt <= 0) continue;
      (out[name] = out[name] || []).push([b.t, Math.max(0, (pick(now) - pick(before)) / dt)]);
    }
  }
  return out;
}

function lastRate(name, pick) {
  const series = rates(pick)[name];
  return series && series.length ? series[series.length - 1][1] : null;
}

// ---- pages ---------------------------------------------------------------------------------

async function topicsPage() {
  const { topics } = await api('/v1/topics');
  const details = await Promise.all(topics.map((t) => api('/v1/topics/' + enc(t.name))));
  const rows = details.map((d) => {
    const records = d.partitions.reduce((a, p) => a + (p.high_watermark - p.log_start_offset), 0);
    const size = d.partitions.reduce((a, p) => a + p.size_bytes, 0);
    return h('tr', { testid: 'topic-row', 'data-topic': d.name },
      h('td', {}, h('a', { href: '#/topics/' + enc(d.name) }, d.name)),
      h('td', { class: 'num' }, d.partitions.length),
      h('td', { class: 'num', testid: 'topic-records' }, records.toLocaleString()),
      h('td', { class: 'num' }, fmtBytes(size)),
      h('td', { class: 'num' }, fmtRate(lastRate(d.name, (x) => x.hw))),
      h('td', { class: 'num' }, fmtRate(lastRate(d.name, (x) => x.size))));
  });
  const series = Object.entries(rates((x) => x.hw)).map(([name, points]) => ({ name, points }));
  const message = h('span', { testid: 'create-result' });
  const name = h('input', { name: 'name', placeholder: 'orders', required: true, testid: 'create-name' });
  const partitions = h('input', { name: 'partitions', type: 'number', min: 1, value: 1, testid: 'create-partitions' });
  const form = h('form', {
    class: 'inline',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api('/v1/topics', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ name: name.value, partitions: Number(partitions.value) }),
        });
        location.hash = '#/topics/' + enc(name.value);
      } catch (error) { message.replaceChildren(h('span', { class: 'error' }, error.message)); }
    },
  }, h('label', {}, 'New topic', name), h('label', {}, 'Partitions', partitions),
  h('button', { type: 'submit', testid: 'create-topic' }, 'Create'), message);
  return [
    h('h1', {}, 'Topics'),
    chart('Throughput (records/s)', series, 'rec/s', 'throughput-chart'),
    h('table', { testid: 'topics' },
      h('thead', {}, h('tr', {}, ['Topic', 'Partitions', 'Records', 'Size', 'Records/s', 'Bytes/s'].map((c, i) => h('th', { class: i ? 'num' : '' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No topics yet.')))),
    h('div', { class: 'panel' }, form),
  ];
}

function recordRow(record, mode) {
  const headerList = (record.headers || []).map((hd) =>
    h('div', { class: 'header' }, h('b', {}, hd.key), ': ', h('code', {}, inline(b64(hd.value)))));
  return h('tr', { testid: 'record', 'data-offset': record.offset },
    h('td', { class: 'num' }, record.partition + '@' + record.offset),
    h('td', {}, fmtTime(record.timestamp)),
    h('td', { testid: 'record-key' }, render(b64(record.key), mode)),
    h('td', { testid: 'record-value' }, render(b64(record.value), mode)),
    h('td', { testid: 'record-headers' }, headerList));
}

const B64 = 'key_encoding=base64&value_encoding=base64&header_encoding=base64';

async function topicPage(name) {
  stopTail();
  const d = await api('/v1/topics/' + enc(name));
  const view = { partition: 0, offset: null, mode: 'text' };
  const partitionOf = (n) => d.partitions.find((p) => p.partition === n);
  const list = h('tbody', { testid: 'records' });
  const status = h('span', { class: 'muted', testid: 'records-status' });

  async function load() {
    stopTail();
    const p = partitionOf(view.partition);
    const fresh = await api('/v1/topics/' + enc(name));
    const now = fresh.partitions.find((x) => x.partition === view.partition) || p;
    if (view.offset === null) view.offset = Math.max(now.log_start_offset, now.high_watermark - PAGE);
    view.offset = Math.min(Math.max(view.offset, now.log_start_offset), now.high_watermark);
    if (view.offset >= now.high_watermark) {
      list.replaceChildren();
      status.textContent = `partition ${view.partition}: no records at ${view.offset} (log ${now.log_start_offset}–${now.high_watermark})`;
      return;
    }
    const fetched = await api(`/v1/topics/${enc(name)}/partitions/${view.partition}/records?offset=${view.offset}&max_bytes=262144&${B64}`);
    const records = fetched.records.filter((r) => r.offset >= view.offset).slice(0, PAGE);
    list.replaceChildren(...records.map((r) => recordRow(r, view.mode)));
    const last = records.length ? records[records.length - 1].offset : view.offset;
    status.textContent = `partition ${view.partition}: offsets ${view.offset}–${last} of ${now.log_start_offset}–${now.high_watermark - 1}`;
  }

  function tail() {
    if (state.tail) { stopTail(); tailButton.textContent = 'Live tail'; return; }
    const controller = new AbortController();
    state.tail = controller;
    tailButton.textContent = 'Stop tail';
    list.replaceChildren();
    status.textContent = `partition ${view.partition}: following new records…`;
    const url = `/v1/topics/${enc(name)}/partitions/${view.partition}/stream?offset=latest&${B64}`;
    streamEvents(url, controller.signal, (event) => {
      if (event.type !== 'message') return;
      const record = JSON.parse(event.data);
      list.prepend(recordRow(record, view.mode));
      while (list.children.length > 500) list.lastChild.remove();
      status.textContent = `partition ${view.partition}: live, last offset ${record.offset}`;
    }).catch((error) => { if (!controller.signal.aborted) status.textContent = 'tail ended: ' + error.message; });
  }

  const partitionSelect = h('select', { testid: 'partition', onchange: () => { view.partition = Number(partitionSelect.value); view.offset = null; load(); } },
    d.partitions.map((p) => h('option', { value: p.partition }, 'partition ' + p.partition)));
  const modeSelect = h('select', { testid: 'render-mode', onchange: () => { view.mode = modeSelect.value; if (!state.tail) load(); } },
    h('option', { value: 'text' }, 'text'), h('option', { value: 'json' }, 'JSON (pretty)'), h('option', { value: 'hex' }, 'hex'));
  const offsetInput = h('input', { type: 'number', min: 0, placeholder: 'offset', testid: 'offset' });
  const tailButton = h('button', { type: 'button', class: 'secondary', testid: 'tail', onclick: tail }, 'Live tail');
  const toolbar = h('div', { class: 'toolbar' },
    h('label', {}, 'Partition', partitionSelect),
    h('label', {}, 'Show as', modeSelect),
    h('label', {}, 'From offset', offsetInput),
    h('button', { type: 'button', class: 'secondary', testid: 'go', onclick: () => { view.offset = Number(offsetInput.value || 0); load(); } }, 'Go'),
    h('button', { type: 'button', class: 'secondary', testid: 'oldest', onclick: () => { view.offset = 0; load(); } }, 'Oldest'),
    h('button', { type: 'button', class: 'secondary', testid: 'prev', onclick: () => { view.offset = Math.max(0, (view.offset || 0) - PAGE); load(); } }, '← Prev'),
    h('button', { type: 'button', class: 'secondary', testid: 'next', onclick: () => { view.offset = (view.offset || 0) + PAGE; load(); } }, 'Next →'),
    h('button', { type: 'button', class: 'secondary', testid: 'newest', onclick: () => { view.offset = null; load(); } }, 'Newest'),
    tailButton);

  const produced = h('span', { testid: 'produce-result' });
  const key = h('input', { placeholder: 'key (optional)', testid: 'produce-key' });
  const value = h('textarea', { placeholder: 'value', testid: 'produce-value' });
  const hdrs = h('textarea', { placeholder: 'headers, one name=value per line', testid: 'produce-headers' });
  const target = h('input', { type: 'number', min: 0, placeholder: 'by key', testid: 'produce-partition' });
  const produceForm = h('form', {
    class: 'inline',
    onsubmit: async (e) => {
      e.preventDefault();
      const record = { value: toB64(value.value) };
      if (key.value) record.key = toB64(key.value);
      if (target.value !== '') record.partition = Number(target.value);
      record.headers = hdrs.value.split('\n').filter((l) => l.includes('=')).map((l) => {
        const at = l.indexOf('=');
        return { key: l.slice(0, at).trim(), value: toB64(l.slice(at + 1)) };
      });
      try {
        const answer = await api(`/v1/topics/${enc(name)}/records`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ key_encoding: 'base64', value_encoding: 'base64', header_encoding: 'base64', records: [record] }),
        });
        const at = answer.offsets[0];
        produced.replaceChildren(h('span', { class: 'notice' }, `stored at partition ${at.partition}, offset ${at.offset}`));
        if (!state.tail && at.partition === view.partition) { view.offset = null; load(); }
      } catch (error) { produced.replaceChildren(h('span', { class: 'error' }, error.message)); }
    },
  }, h('label', {}, 'Key', key), h('label', {}, 'Value', value), h('label', {}, 'Headers', hdrs),
  h('label', {}, 'Partition', target), h('button', { type: 'submit', testid: 'produce' }, 'Produce'), produced);

  const series = (rates((x) => x.hw)[name] || []);
  const settings = h('dl', { class: 'settings' }, Object.entries(d.config || {}).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const page = [
    h('h1', { testid: 'topic-name' }, name),
    h('div', { class: 'grid' },
      chart('Records/s', [{ name, points: series }], 'rec/s', 'topic-chart'),
      h('div', { class: 'panel' }, h('h2', {}, 'Settings'), settings)),
    h('table', { testid: 'partitions' },
      h('thead', {}, h('tr', {}, ['Partition', 'Log start', 'High watermark', 'Log end', 'Size', 'Segments'].map((c) => h('th', { class: 'num' }, c)))),
      h('tbody', {}, d.partitions.map((p) => h('tr', { testid: 'partition-row' },
        h('td', { class: 'num' }, p.partition), h('td', { class: 'num' }, p.log_start_offset),
        h('td', { class: 'num' }, p.high_watermark), h('td', { class: 'num' }, p.log_end_offset),
        h('td', { class: 'num' }, fmtBytes(p.size_bytes)), h('td', { class: 'num' }, p.segments))))),
    h('h2', {}, 'Records'),
    toolbar,
    status,
    h('table', {}, h('thead', {}, h('tr', {}, ['Where', 'Time (UTC)', 'Key', 'Value', 'Headers'].map((c) => h('th', {}, c)))), list),
    h('h2', {}, 'Produce a record'),
    h('div', { class: 'panel' }, produceForm),
  ];
  setTimeout(load, 0);
  return page;
}

// Server-sent events over fetch (so a token header can go along), one callback per event.
async function streamEvents(url, signal, onEvent) {
  const response = await fetch(url, { headers: headers({ Accept: 'text/event-stream' }), signal, credentials: 'same-origin' });
  if (!response.ok) throw new Error(response.status + ' ' + response.statusText);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { type: 'message', data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event.type = line.slice(7);
        else if (line.startsWith('data: ')) event.data += line.slice(6);
      }
      if (event.data) onEvent(event);
    }
  }
}

function stopTail() {
  if (state.tail) { state.tail.abort(); state.tail = null; }
}

async function groupsPage() {
  const { groups } = await api('/v1/groups');
  const details = await Promise.all(groups.map((g) => api('/v1/groups/' + enc(g.group))));
  const series = {};
  for (const entry of state.history) {
    for (const [group, lag] of Object.entries(entry.groups)) (series[group] = series[group] || []).push([entry.t, lag]);
  }
  return [
    h('h1', {}, 'Consumer groups'),
    chart('Lag (records)', Object.entries(series).map(([name, points]) => ({ name, points })), 'records', 'lag-chart'),
    h('table', { testid: 'groups' },
      h('thead', {}, h('tr', {}, ['Group', 'State', 'Members', 'Lag'].map((c, i) => h('th', { class: i > 1 ? 'num' : '' }, c)))),
      h('tbody', {}, details.length ? details.map((g) => h('tr', { testid: 'group-row', 'data-group': g.group },
        h('td', {}, h('a', { href: '#/groups/' + enc(g.group) }, g.group)),
        h('td', {}, g.state),
        h('td', { class: 'num' }, g.members.length),
        h('td', { class: 'num', testid: 'group-lag' }, g.partitions.reduce((a, p) => a + p.lag, 0)))) :
        h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No groups yet.')))),
  ];
}

async function groupPage(name) {
  const g = await api('/v1/groups/' + enc(name));
  const points = state.history.filter((e) => name in e.groups).map((e) => [e.t, e.groups[name]]);
  const result = h('div', { testid: 'reset-result' });
  const to = h('select', { testid: 'reset-to' }, ['earliest', 'latest', 'offset', 'timestamp', 'shift'].map((v) => h('option', { value: v }, v)));
  const amount = h('input', { type: 'number', placeholder: 'offset / ms / ±records', testid: 'reset-value' });
  const topics = h('input', { placeholder: 'topics (comma-separated; empty: all committed)', testid: 'reset-topics' });
  async function reset(dryRun) {
    const target = ['earliest', 'latest'].includes(to.value) ? to.value : { [to.value]: Number(amount.value || 0) };
    try {
      const moved = await api('/console/api/groups/' + enc(name) + '/reset', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: target, topics: topics.value.split(',').map((t) => t.trim()).filter(Boolean), dry_run: dryRun }),
      });
      result.replaceChildren(
        h('p', { class: 'notice' }, dryRun ? 'Would move:' : 'Moved:'),
        h('table', { testid: 'reset-plan' }, h('tbody', {}, moved.map((m) =>
          h('tr', {}, h('td', {}, m.topic + '/' + m.partition), h('td', { class: 'num' }, m.from === null ? '—' : m.from), h('td', {}, '→'), h('td', { class: 'num' }, m.to))))));
      if (!dryRun) setTimeout(route, 300);
    } catch (error) { result.replaceChildren(h('p', { class: 'error' }, error.message)); }
  }
  return [
    h('h1', { testid: 'group-name' }, name),
    h('p', { class: 'muted' }, `state ${g.state} · generation ${g.generation} · ${g.members.length} member(s)`),
    chart('Lag (records)', [{ name, points }], 'records', 'group-lag-chart'),
    h('h2', {}, 'Members'),
    h('table', { testid: 'members' },
      h('thead', {}, h('tr', {}, ['Member', 'Client', 'Topics', 'Assigned'].map((c) => h('th', {}, c)))),
      h('tbody', {}, g.members.length ? g.members.map((m) => h('tr', { testid: 'member-row' },
        h('td', {}, m.member_id), h('td', {}, m.client_id), h('td', {}, m.topics.join(', ')),
        h('td', {}, m.assignment.map((a) => a.topic + '/' + a.partition).join(', ')))) :
        h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No live members.')))),
    h('h2', {}, 'Offsets and lag'),
    h('table', { testid: 'offsets' },
      h('thead', {}, h('tr', {}, ['Topic', 'Partition', 'Committed', 'Log start', 'High watermark', 'Lag', 'Member'].map((c, i) => h('th', { class: i ? 'num' : '' }, c)))),
      h('tbody', {}, g.partitions.map((p) => h('tr', { testid: 'offset-row' },
        h('td', {}, p.topic), h('td', { class: 'num' }, p.partition),
        h('td', { class: 'num', testid: 'committed' }, p.committed_offset === null ? '—' : p.committed_offset),
        h('td', { class: 'num' }, p.log_start_offset), h('td', { class: 'num' }, p.high_watermark),
        h('td', { class: 'num', testid: 'lag' }, p.lag), h('td', { class: 'num' }, p.member_id || '—'))))),
    h('h2', {}, 'Reset offsets'),
    h('div', { class: 'panel' },
      h('p', { class: 'muted' }, 'Moves the committed offsets, as kafka-consumer-groups --reset-offsets does; the group must have no live member.'),
      h('div', { class: 'toolbar' }, h('label', {}, 'To', to), h('label', {}, 'Value', amount), h('label', {}, 'Topics', topics),
        h('button', { type: 'button', class: 'secondary', testid: 'reset-preview', onclick: () => reset(true) }, 'Preview'),
        h('button', { type: 'button', testid: 'reset-apply', onclick: () => reset(false) }, 'Reset')),
      result),
  ];
}

function callPage() {
  const topic = h('input', { placeholder: 'topic', required: true, testid: 'call-topic' });
  const key = h('input', { placeholder: 'key (optional)', testid: 'call-key' });
  const body = h('textarea', { placeholder: 'request value', testid: 'call-value' });
  const timeout = h('input', { type: 'number', value: 5000, min: 1, testid: 'call-timeout' });
  const mode = h('select', { testid: 'call-mode' }, h('option', { value: 'text' }, 'text'), h('option', { value: 'json' }, 'JSON (pretty)'), h('option', { value: 'hex' }, 'hex'));
  const result = h('div', { testid: 'call-result' });
  const form = h('form', {
    class: 'inline',
    onsubmit: async (e) => {
      e.preventDefault();
      result.replaceChildren(h('p', { class: 'muted' }, 'waiting for the reply…'));
      const query = new URLSearchParams({ timeout_ms: timeout.value });
      if (key.value) query.set('key', key.value);
      try {
        const response = await fetch(`/v1/topics/${enc(topic.value)}/call?${query}`, {
          method: 'POST', body: body.value, headers: headers({ 'Content-Type': 'application/json' }), credentials: 'same-origin',
        });
        const bytes = new Uint8Array(await response.arrayBuffer());
        const id = response.headers.get('brook-correlation-id');
        result.replaceChildren(
          h('p', { class: response.ok ? 'notice' : 'error', testid: 'call-status' }, `${response.status} ${response.statusText}` + (id ? ` · correlation id ${id}` : '')),
          h('p', { class: 'muted' }, 'Content-Type: ' + (response.headers.get('content-type') || '—')),
          h('div', { testid: 'call-reply' }, render(bytes, mode.value)));
      } catch (error) { result.replaceChildren(h('p', { class: 'error' }, error.message)); }
    },
  }, h('label', {}, 'Topic', topic), h('label', {}, 'Key', key), h('label', {}, 'Request', body),
  h('label', {}, 'Timeout (ms)', timeout), h('label', {}, 'Show as', mode), h('button', { type: 'submit', testid: 'call' }, 'Call'));
  return [
    h('h1', {}, 'Request-reply'),
    h('p', { class: 'muted' }, 'Sends the value as a request on the topic and shows the reply a responder appends (see docs/request-reply.md).'),
    h('div', { class: 'panel' }, form),
    result,
  ];
}

// Samples of one family from the metrics text, summed by one label.
function metricBy(text, family, label) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(family + '{') && !line.startsWith(family + ' ')) continue;
    const match = line.match(new RegExp(label + '="([^"]*)"'));
    const key = match ? match[1] : '';
    out[key] = (out[key] || 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

async function brokerPage() {
  const [settings, metrics, live, ready] = await Promise.all([
    api('/console/api/settings'),
    fetch('/metrics', { headers: headers(), credentials: 'same-origin' }).then((r) => r.text()),
    fetch('/healthz', { headers: headers() }).then((r) => r.status),
    fetch('/readyz', { headers: headers() }).then((r) => r.status),
  ]);
  const requests = metricBy(metrics, 'brook_requests_total', 'door');
  const errors = metricBy(metrics, 'brook_request_errors_total', 'door');
  const connections = metricBy(metrics, 'brook_open_connections', 'door');
  const dl = (object) => h('dl', { class: 'settings' }, Object.entries(object).map(([k, v]) => [h('dt', {}, k), h('dd', {}, Array.isArray(v) ? (v.join(', ') || 'none') : String(v))]));
  const token = h('input', { type: 'password', value: state.token, placeholder: 'bearer token (if the door asks for one)', testid: 'token' });
  return [
    h('h1', {}, 'Broker'),
    h('div', { class: 'grid' },
      h('div', { class: 'panel', testid: 'broker-health' }, h('h2', {}, 'Health'),
        dl({ version: settings.version, liveness: live === 200 ? 'ok' : live, readiness: ready === 200 ? 'ready' : 'not ready (' + ready + ')' })),
      h('div', { class: 'panel', testid: 'door-traffic' }, h('h2', {}, 'Traffic by door'),
        h('table', {}, h('thead', {}, h('tr', {}, ['Door', 'Requests', 'Errors', 'Connections'].map((c, i) => h('th', { class: i ? 'num' : '' }, c)))),
          h('tbody', {}, ['grpc', 'http', 'kafka'].map((door) => h('tr', { testid: 'door-row' },
            h('td', {}, door), h('td', { class: 'num' }, (requests[door] || 0).toLocaleString()),
            h('td', { class: 'num' }, (errors[door] || 0).toLocaleString()), h('td', { class: 'num' }, connections[door] || 0))))))),
    h('div', { class: 'grid' },
      h('div', { class: 'panel', testid: 'broker-settings' }, h('h2', {}, 'Broker'), dl(settings.broker), h('h2', {}, 'Limits'), dl(settings.limits)),
      h('div', { class: 'panel' }, h('h2', {}, 'Topic defaults'), dl(settings.topic_defaults), h('h2', {}, 'HTTP door'), dl(settings.http))),
    h('div', { class: 'panel' }, h('h2', {}, 'Console access'),
      h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); state.token = token.value; localStorage.setItem('brook.token', token.value); route(); } },
        h('label', {}, 'Token', token), h('button', { type: 'submit', class: 'secondary' }, 'Save'))),
  ];
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  const hash = location.hash || '#/topics';
  const [, page, name] = hash.split('/').map(decodeURIComponent);
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.nav === page));
  if (page !== 'topics' || !name) stopTail();
  try {
    let content;
    if (page === 'topics' && name) content = await topicPage(name);
    else if (page === 'groups' && name) content = await groupPage(name);
    else if (page === 'groups') content = await groupsPage();
    else if (page === 'call') content = callPage();
    else if (page === 'broker') content = await brokerPage();
    else content = await topicsPage();
    main.replaceChildren(...content);
    main.setAttribute('data-page', page + (name ? '/' + name : ''));
  } catch (error) {
    showError(main, error);
  }
}

async function health() {
  const pill = document.getElementById('health');
  try {
    const ready = await fetch('/readyz', { headers: headers() });
    pill.textContent = ready.ok ? 'ready' : 'not ready';
    pill.className = 'pill ' + (ready.ok ? 'ok' : 'bad');
  } catch (_) {
    pill.textContent = 'unreachable';
    pill.className = 'pill bad';
  }
}

window.addEventListener('hashchange', route);
sample().then(route);
health();
setInterval(sample, SAMPLE_MS);
setInterval(health, 5000);
// The list pages refresh themselves; a topic or group page keeps its place until asked.
setInterval(() => {
  const page = (location.hash || '#/topics').split('/')[1];
  const typing = ['INPUT', 'TEXTAREA', 'SELECT'].includes((document.activeElement || {}).tagName);
  if ((page === 'topics' || page === 'groups') && location.hash.split('/').length < 3 && !typing) route();
}, 5000);
