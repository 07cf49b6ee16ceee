// The web UI of `sop serve`: SOPs with their metrics, runs, a run page with live output,
// and the runs waiting for a decision with Approve / Reject (or Confirm) buttons. It only
// calls the HTTP API (docs/API.md), same origin; with tokens configured it asks for one
// and keeps it in this tab's sessionStorage, sending it as `Authorization: Bearer`.
'use strict';

const main = document.getElementById('main');
const statusLine = document.getElementById('status');
const tokenForm = document.getElementById('token-form');
const tokenInput = document.getElementById('token');
let timer = null;

function token() { return sessionStorage.getItem('sop-token'); }

// This daemon's CSRF token: every state-changing request from the page carries it.
let csrf = null;
async function csrfToken() {
  if (!csrf) csrf = (await (await fetch('/ui/session')).json()).csrf;
  return csrf;
}

async function api(method, path, body) {
  const headers = { accept: 'application/json', 'x-sop-client': 'ui' };
  if (token()) headers.authorization = `Bearer ${token()}`;
  if (method !== 'GET') headers['x-sop-csrf'] = await csrfToken();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => null);
  if (r.status === 401) {
    tokenForm.hidden = false;
    throw new Error((data && data.error && data.error.message) || 'an API token is needed');
  }
  if (!r.ok) throw new Error((data && data.error && data.error.message) || `HTTP ${r.status}`);
  return data;
}

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('sop-token', tokenInput.value.trim());
  tokenInput.value = '';
  tokenForm.hidden = true;
  route();
});

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const badge = (s) => el('span', { class: `st st-${s}` }, s);
const runLink = (id) => el('a', { href: `#/run/${id}` }, id);
const ms = (v) => (v === null || v === undefined ? '–' : v < 1000 ? `${v} ms` : v < 60000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v / 60000)} min`);
const pct = (r) => (r === null || r === undefined ? '–' : `${(r * 100).toFixed(1)} %`);
function table(head, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'empty' }, empty);
  return el('table', {}, el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))));
}

// Runs by status as a stacked bar (the metrics chart of a SOP row).
const COLORS = { success: '#2d9d4f', failure: '#d63c35', timed_out: '#e07b39', rejected: '#b8596b', cancelled: '#9aa3b2' };
function statusBar(byStatus) {
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  const bar = el('span', { class: 'bar', title: Object.entries(byStatus).filter(([, n]) => n).map(([s, n]) => `${s}: ${n}`).join(', ') });
  if (total === 0) return bar;
  for (const [s, n] of Object.entries(byStatus)) {
    if (!n) continue;
    // Styles set through the DOM: the page's policy allows no inline style attributes.
    const part = el('span');
    part.style.width = `${(100 * n) / total}%`;
    part.style.background = COLORS[s] || '#6c8ebf';
    bar.append(part);
  }
  return bar;
}

// Each SOP's run durations (all time): a bar to its p95 with a mark at its p50, on one
// scale, so slow and uneven SOPs stand out.
function durationChart(sops) {
  const rows = Object.entries(sops).filter(([, w]) => w.all.run_duration_ms.count > 0);
  if (rows.length === 0) return el('p', { class: 'empty' }, 'No run has ended yet: no durations to chart.');
  const top = Math.max(...rows.map(([, w]) => w.all.run_duration_ms.p95));
  const chart = el('div', { class: 'chart', id: 'durations' }, el('h3', {}, 'Run duration by SOP (p50 mark, bar to p95, all time)'));
  for (const [name, w] of rows) {
    const d = w.all.run_duration_ms;
    const track = el('span', { class: 'track', title: `p50 ${ms(d.p50)}, p95 ${ms(d.p95)}, max ${ms(d.max)}, ${d.count} runs` });
    const bar = el('span', { class: 'span' });
    bar.style.width = `${top ? (100 * d.p95) / top : 0}%`;
    const mark = el('span', { class: 'mark' });
    mark.style.left = `${top ? (100 * d.p50) / top : 0}%`;
    track.append(bar, mark);
    chart.append(el('div', { class: 'row' }, el('span', { class: 'label' }, name), track, el('span', {}, `${ms(d.p50)} / ${ms(d.p95)}`)));
  }
  return chart;
}

function decideForm(a) {
  const comment = el('input', { type: 'text', placeholder: a.kind === 'approval' ? 'comment (a rejection needs one)' : 'comment', 'data-comment': a.run_id });
  const act = (verb) => async () => {
    const text = comment.value.trim();
    try {
      if (verb === 'reject') {
        if (!text) throw new Error('a rejection needs a reason: write it in the comment');
        await api('POST', `/api/runs/${a.run_id}/reject`, { reason: text, gate: a.gate });
      } else if (verb === 'approve') {
        await api('POST', `/api/runs/${a.run_id}/approve`, { comment: text || undefined, gate: a.gate });
      } else {
        await api('POST', `/api/runs/${a.run_id}/confirm`, { comment: text || undefined, failed: verb === 'fail', gate: a.gate });
      }
      statusLine.textContent = `${verb}: run ${a.run_id}`;
      comment.blur();
      route();
    } catch (e) {
      statusLine.textContent = `${verb} failed: ${e.message}`;
    }
  };
  const buttons = a.kind === 'approval'
    ? [el('button', { 'data-approve': a.run_id, onclick: act('approve') }, 'Approve'), el('button', { 'data-reject': a.run_id, onclick: act('reject') }, 'Reject')]
    : [el('button', { 'data-confirm': a.run_id, onclick: act('confirm') }, 'Confirm done'), el('button', { 'data-fail': a.run_id, onclick: act('fail') }, 'Mark failed'), el('button', { 'data-reject': a.run_id, onclick: act('reject') }, 'Reject')];
  return el('div', { class: 'decide' }, comment, buttons);
}

async function home(gen) {
  // Someone typing a comment keeps the page as it is: look again later.
  if (document.activeElement && document.activeElement.matches('[data-comment]')) {
    timer = setTimeout(route, 2000);
    return;
  }
  const [approvals, sops, runs, metrics] = await Promise.all([
    api('GET', '/api/approvals'), api('GET', '/api/sops'), api('GET', '/api/runs?limit=50'), api('GET', '/api/metrics'),
  ]);
  if (gen !== generation) return; // the person went elsewhere meanwhile
  // Keep what is being typed in a comment across refreshes.
  const typed = {};
  document.querySelectorAll('[data-comment]').forEach((i) => { typed[i.dataset.comment] = i.value; });
  const waiting = el('section', { id: 'approvals' }, el('h2', {}, `Waiting for a decision (${approvals.length})`),
    table(['run', 'SOP', 'gate', 'waiting since', 'approved by', 'decide'], approvals.map((a) => [
      runLink(a.run_id), a.sop, `${a.gate} (${a.kind})`, new Date(a.since).toLocaleString(),
      `${a.approved_by.length} of ${a.required}`, decideForm(a),
    ]), 'Nothing waits.'));
  const sopRows = sops.map((s) => {
    const m = (metrics.sops[s.name] || {}).all;
    return [s.name, s.priority, s.execution_mode, s.triggers.join(', ') || '–', s.last_status ? badge(s.last_status) : '–',
      pct(m && m.success_rate), ms(m && m.run_duration_ms.p50), m ? statusBar(m.by_status) : '–'];
  });
  const sopSection = el('section', { id: 'sops' }, el('h2', {}, 'SOPs'),
    table(['name', 'priority', 'mode', 'triggers', 'last run', 'success (all time)', 'p50 duration', 'runs by status'], sopRows, 'No SOPs.'));
  const o = metrics.overall;
  const overall = el('section', { id: 'metrics' }, el('h2', {}, 'Metrics'),
    table(['', 'runs', 'runs by status', 'success', 'p50 / p95 run', 'p50 queue wait', 'p50 approval wait', 'approvals', 'rejections', 'suppressed'],
      [['all', o.all], ['30 days', o['30d']], ['7 days', o['7d']]].map(([w, f]) => [w, f.runs, statusBar(f.by_status), pct(f.success_rate),
        `${ms(f.run_duration_ms.p50)} / ${ms(f.run_duration_ms.p95)}`, ms(f.queue_wait_ms.p50), ms(f.approval_wait_ms.p50),
        f.approvals, f.rejections, f.suppressed_triggers]), ''),
    durationChart(metrics.sops));
  const runSection = el('section', { id: 'runs' }, el('h2', {}, 'Runs'),
    table(['run', 'SOP', 'status', 'priority', 'created'], runs.map((r) => [runLink(r.id), r.sop, badge(r.status), r.priority,
      new Date(r.created_at).toLocaleString()]), 'No runs yet.'));
  main.replaceChildren(waiting, sopSection, overall, runSection);
  // Redrawn as a whole: a comment being typed keeps its text (and the refresh waits while
  // one has the focus, above).
  document.querySelectorAll('[data-comment]').forEach((i) => { if (typed[i.dataset.comment]) i.value = typed[i.dataset.comment]; });
  timer = setTimeout(route, 2000);
}

let stream = null;

// The run's head and steps, drawn again after each transition; the live output pane is
// kept (it fills from the event stream).
async function drawRun(id, gen, into) {
  const doc = await api('GET', `/api/runs/${encodeURIComponent(id)}`);
  if (gen !== generation) return null;
  const when = (t) => (t ? new Date(t).toLocaleString() : '–');
  const steps = table(['#', 'step', 'status', 'duration', 'exit', 'output'], doc.steps.map((s) => [
    s.number, s.title, badge(s.status), ms(s.duration_ms), s.exit_code ?? '–', s.output ? el('pre', {}, s.output) : '',
  ]), 'No steps.');
  into.replaceChildren(
    el('section', {}, el('h2', {}, `Run ${doc.run_id} of ${doc.sop}: `, badge(doc.status)),
      el('p', {}, `trigger ${doc.trigger.type} by ${doc.trigger.by}; created ${when(doc.created_at)}; ended ${when(doc.completed_at)}`),
      doc.waiting ? el('p', {}, `waits at ${doc.waiting.gate} (${doc.waiting.kind})`) : null,
      doc.error ? el('p', { class: 'error' }, doc.error) : null),
    el('section', {}, el('h2', {}, 'Steps'), steps));
  return doc;
}

async function runPage(id, gen) {
  const top = el('div', { id: 'run' });
  const live = el('pre', { id: 'live' });
  main.replaceChildren(top, el('section', {}, el('h2', {}, 'Live output'), live));
  if (!(await drawRun(id, gen, top))) return;
  followEvents(id, gen, top, live);
}

// Server-sent events, read with fetch (EventSource cannot send a token). The stream sends
// the run's whole history, then what happens, and ends after `finished`.
async function followEvents(id, gen, top, live) {
  if (stream) stream.abort();
  stream = new AbortController();
  const headers = { accept: 'text/event-stream' };
  if (token()) headers.authorization = `Bearer ${token()}`;
  let redraw = null;
  try {
    const r = await fetch(`/api/runs/${encodeURIComponent(id)}/events`, { headers, signal: stream.signal });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const type = (block.match(/^event: (.*)$/m) || [])[1];
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (type === 'output') {
          try { live.append(JSON.parse(data).text); } catch { live.append(data); }
        } else if (type) {
          // A transition: the head and steps again, once the burst is over.
          clearTimeout(redraw);
          redraw = setTimeout(() => { if (gen === generation) drawRun(id, gen, top).catch(() => {}); }, 250);
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') statusLine.textContent = `live output: ${e.message}`;
  }
}

// Each navigation (or refresh) is a generation: an answer for an older one is dropped.
let generation = 0;

async function route() {
  clearTimeout(timer);
  const gen = ++generation;
  const hash = location.hash || '#/';
  try {
    const m = hash.match(/^#\/run\/([0-9a-f]+)$/);
    if (m) {
      await runPage(m[1], gen);
    } else {
      if (stream) stream.abort();
      await home(gen);
    }
    statusLine.textContent = statusLine.textContent.startsWith('cannot reach') ? '' : statusLine.textContent;
  } catch (e) {
    if (gen !== generation) return;
    statusLine.textContent = `cannot reach the daemon: ${e.message}; trying again`;
    // The daemon may be restarting: the lists look again (a run page is left as it is).
    if (!location.hash.startsWith('#/run/')) timer = setTimeout(route, 5000);
  }
}

window.addEventListener('hashchange', route);
route();
