"""The dashboard page: one self-contained HTML document (no CDN, no build step).

``GET <prefix>/dashboard`` serves it as is. The page polls ``monitor/stats`` and calls the API with
URLs relative to its own location, so it works under any route prefix, and sends the API token
(asked for on the first 401, kept in the tab's sessionStorage) with every call.
"""

# A raw string: the script's regular expressions keep their backslashes.
DASHBOARD_HTML = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TMLSR-Ray dashboard</title>
<style>
:root{--fg:#1d2330;--muted:#6b7386;--line:#e3e6ee;--bg:#f5f6fa;--card:#fff;--blue:#2563eb;--green:#15803d;
 --red:#b91c1c;--amber:#b45309;--gray:#6b7280}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
main{max-width:1400px;margin:0 auto;padding:16px 24px 32px}
header{display:flex;align-items:center;gap:16px;margin-bottom:14px}
header h1{font-size:20px;margin:0}
header h1 small{font-weight:400;color:var(--muted);font-size:14px;margin-left:6px}
.spacer{flex:1}
#live{color:var(--muted);font-size:13px}
#live::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;background:var(--gray);margin-right:6px}
#live.ok::before{background:#22c55e}#live.down{color:var(--red)}#live.down::before{background:var(--red)}
#token-state{font-size:13px;color:var(--muted)}
.link-button{background:none;border:0;color:var(--blue);cursor:pointer;padding:0;font:inherit}
.banner{background:#fff7ed;border:1px solid #fdba74;border-radius:8px;padding:12px 16px;margin-bottom:14px;
 display:flex;gap:12px;align-items:center;flex-wrap:wrap}
.banner[hidden]{display:none}
.banner strong{color:var(--amber)}
.cards{display:grid;grid-template-columns:repeat(7,minmax(110px,1fr));gap:10px;margin-bottom:14px}
.card{background:var(--card);border:1px solid var(--line);border-top:3px solid var(--gray);border-radius:8px;padding:8px 14px}
.card .num{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card.system{border-top-color:#334155}
.card.pending{border-top-color:var(--amber)}.card.processing{border-top-color:var(--blue)}
.card.completed{border-top-color:var(--green)}.card.failed{border-top-color:var(--red)}
.meter{height:4px;background:var(--line);border-radius:2px;margin-top:4px;overflow:hidden}
.meter span{display:block;height:100%;background:#334155}
section.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin-bottom:14px}
section.panel h2{font-size:15px;margin:0 0 10px}
.form-row{display:flex;flex-wrap:wrap;gap:10px 14px;align-items:flex-end}
.form-row+.form-row{margin-top:10px}
#submit-form label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:3px}
#submit-form label.url{flex:1 1 420px}
#submit-form .pair{color:var(--muted);font-size:14px;white-space:nowrap}
#submit-form .hint{flex:1 1 260px;margin:0;font-size:12px;color:var(--muted);align-self:center}
#submit-form input,#submit-form select,.banner input{font:inherit;font-size:14px;padding:5px 8px;border:1px solid #c9ceda;border-radius:6px;background:#fff;color:var(--fg)}
#submit-form input[type=number]{width:104px}
#submit-form input.dim{width:80px}
#submit-form .model input{width:260px}
#submit-form input:disabled{background:#f0f1f5;color:#a0a6b4}
button.primary{font:inherit;font-weight:600;background:var(--blue);color:#fff;border:0;border-radius:6px;padding:6px 20px;cursor:pointer}
button.primary:disabled{opacity:.6;cursor:default}
#submit-message{font-size:13px;min-height:1.45em;margin-top:8px}
.ok-text{color:var(--green)}.error-text{color:var(--red)}
.table-scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;text-align:left;padding:6px 8px;border-bottom:1px solid var(--line)}
td{padding:8px;border-bottom:1px solid var(--line);vertical-align:top}
tr:last-child td{border-bottom:0}
tr.fresh{animation:fresh 2s ease-out}
@keyframes fresh{from{background:#dbeafe}to{background:transparent}}
.sub{color:var(--muted);font-size:12px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.input-name{max-width:260px;display:inline-block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;background:#eef0f4;color:var(--gray)}
.badge.pending{background:#fef3c7;color:var(--amber)}.badge.processing{background:#dbeafe;color:var(--blue)}
.badge.completed{background:#dcfce7;color:var(--green)}.badge.failed{background:#fee2e2;color:var(--red)}
.error{color:var(--red);font-size:12px;min-width:160px;max-width:300px;overflow-wrap:anywhere;margin-top:3px}
.stages{display:flex;gap:4px}
.stage{font-size:12px;border:1px solid var(--line);border-radius:4px;padding:0 6px;color:var(--muted);white-space:nowrap;font-variant-numeric:tabular-nums}
.stage::before{content:"";display:inline-block;width:6px;height:6px;border-radius:50%;background:#cbd0da;margin-right:5px;vertical-align:1px}
.stage.success{color:var(--fg)}.stage.success::before{background:#22c55e}
.stage.running{color:var(--blue);border-color:#93c5fd}.stage.running::before{background:var(--blue);animation:pulse 1s infinite alternate}
.stage.failed{color:var(--red);border-color:#fca5a5}.stage.failed::before{background:var(--red)}
.stage.canceled::before{background:var(--gray)}.stage.skipped{border-style:dashed}
@keyframes pulse{to{opacity:.25}}
.progress{max-width:320px;margin-top:6px}
.progress .sub{white-space:nowrap}
.stages+.sub{margin-top:4px}
td.col-action{text-align:right}
td.col-task .sub,td.col-input .sub,td.col-output .sub{white-space:nowrap}
.bar{height:8px;background:#e5e9f2;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;background:var(--blue);border-radius:4px;transition:width .4s}
.bar.indeterminate span{width:30%;animation:slide 1.2s infinite ease-in-out}
@keyframes slide{from{margin-left:-30%}to{margin-left:100%}}
.progress .sub{margin-top:3px;font-variant-numeric:tabular-nums}
a{color:var(--blue);text-decoration:none}a:hover{text-decoration:underline}
button.cancel{font:inherit;font-size:12px;border:1px solid #fca5a5;color:var(--red);background:#fff;border-radius:6px;padding:2px 10px;cursor:pointer}
button.cancel:hover{background:#fee2e2}button.cancel:disabled{opacity:.5;cursor:default}
#no-tasks{color:var(--muted);padding:12px 8px}
</style></head><body><main>
<header>
 <h1>TMLSR-Ray <small>super-resolution dashboard</small></h1>
 <span class="spacer"></span>
 <span id="token-state" hidden>API token set · <button type="button" class="link-button" id="forget-token">forget</button></span>
 <span id="live">connecting…</span>
</header>

<form id="token-banner" class="banner" hidden autocomplete="off">
 <strong>API token needed.</strong>
 <span id="token-reason">This service needs its API token for task data.</span>
 <input id="token-input" type="password" placeholder="API token" size="28" aria-label="API token">
 <button class="primary" type="submit">Use token</button>
</form>

<div class="cards" id="cards"></div>

<section class="panel">
 <h2>New task</h2>
 <form id="submit-form" autocomplete="off">
  <div class="form-row">
   <label class="url">Input URL (http, https or oss)
    <input name="url" type="url" required placeholder="https://example.com/input.mp4"></label>
   <label>Type <select name="type"><option value="video">video</option><option value="image">image</option></select></label>
   <label class="model">Model <input name="model" list="model-names" placeholder="service default"></label>
   <button class="primary" type="submit">Submit</button>
  </div>
  <div class="form-row">
   <label>Outscale <input name="outscale" type="number" min="0.01" step="any" placeholder="native"></label>
   <label>Magnification <input name="output_magnification" type="number" min="0.01" step="any" placeholder="—"></label>
   <label>Output size (W × H) <span class="pair"><input class="dim" name="output_width" type="number" min="1" step="1"
    placeholder="width" aria-label="output width"> × <input class="dim" name="output_height" type="number" min="1" step="1"
    placeholder="height" aria-label="output height"></span></label>
   <label title="Target output height; SeedVR2 models only">Resolution <input name="resolution" type="number" min="1" step="1" placeholder="SeedVR2" disabled></label>
   <label title="Noise seed; SeedVR2 models only">Seed <input name="seed" type="number" min="0" step="1" placeholder="SeedVR2" disabled></label>
   <p class="hint">Optional. The first size given wins: resolution (SeedVR2 models), output size,
    magnification (of the input), outscale (after the model); with none, the model's own scale.</p>
  </div>
 </form>
 <datalist id="model-names"></datalist>
 <div id="submit-message" role="status"></div>
</section>

<section class="panel">
 <h2>Recent tasks</h2>
 <div class="table-scroll"><table>
  <thead><tr><th>Task</th><th>Input</th><th>Status</th><th>Stages and progress</th><th>Output</th><th></th></tr></thead>
  <tbody id="tasks"></tbody>
 </table></div>
 <div id="no-tasks" hidden>No tasks yet: submit one above.</div>
</section>
</main>
<script>
'use strict';
const REFRESH_MS = 2000;
const TOKEN_KEY = 'tmlsr-api-token';
// The page is served at <prefix>/dashboard; API paths are resolved against <prefix>/ so the
// service works under any route prefix.
const API_ROOT = location.pathname.replace(/\/dashboard\/?$/, '/');
const FINISHED = ['completed', 'failed', 'canceled'];
const $ = id => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY) || '';

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
}
function isHttpUrl(url) {
  try { return ['http:', 'https:'].includes(new URL(url).protocol); } catch (_) { return false; }
}
function isSameOrigin(url) {
  try { return new URL(url, location.href).origin === location.origin; } catch (_) { return false; }
}
function authHeaders(headers = {}) {
  return token ? {...headers, Authorization: 'Bearer ' + token} : headers;
}

class Unauthorized extends Error {}

async function callApi(method, path, body) {
  const init = {method, cache: 'no-store', headers: authHeaders(body ? {'Content-Type': 'application/json'} : {})};
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(API_ROOT + path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* an empty or non-JSON body */ }
  if (response.status === 401) {
    askForToken();
    throw new Unauthorized('API token missing or wrong');
  }
  if (!response.ok) {
    const error = new Error((data && data.error) || `HTTP ${response.status}`);
    error.status = response.status;
    error.retryAfter = response.headers.get('Retry-After');
    throw error;
  }
  return data;
}

// -- API token ---------------------------------------------------------------------------------

function askForToken() {
  $('token-reason').textContent = token
    ? 'The token in use was refused: enter the right one.'
    : 'This service needs its API token for task data: enter it to see and submit tasks.';
  const banner = $('token-banner');
  if (banner.hidden) { banner.hidden = false; $('token-input').focus(); }
  $('token-state').hidden = true;
  setLive('down', 'needs API token');
}
$('token-banner').addEventListener('submit', event => {
  event.preventDefault();
  token = $('token-input').value.trim();
  $('token-input').value = '';
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  $('token-banner').hidden = true;
  refresh();
});
$('forget-token').addEventListener('click', () => {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  $('token-state').hidden = true;
  refresh();
});

// -- formatting --------------------------------------------------------------------------------

function seconds(value) {
  if (value == null) return '';
  return value < 10 ? value.toFixed(2) + ' s' : value < 600 ? value.toFixed(1) + ' s' : clock(value);
}
function clock(total) {
  total = Math.max(0, Math.round(total));
  const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = total % 60;
  return (h ? h + ':' + String(m).padStart(2, '0') : m) + ':' + String(s).padStart(2, '0');
}
function bytes(n) {
  if (n == null) return '';
  return n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KB' : (n / 1048576).toFixed(1) + ' MB';
}
const two = n => String(n).padStart(2, '0');
function timeOfDay(date) {
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}
function localTime(iso) {
  const date = new Date(iso);
  if (isNaN(date)) return esc(iso);
  if (date.toDateString() === new Date().toDateString()) return timeOfDay(date);
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${timeOfDay(date)}`;
}
function fileName(url) {
  try { return decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() || url); }
  catch (_) { return url; }
}
function sizing(params) {
  if (params.resolution) return `→ ${params.resolution}p`;
  if (params.output_dims) return `→ ${params.output_dims[0]}×${params.output_dims[1]}`;
  if (params.output_magnification) return `×${params.output_magnification} of input`;
  if (params.outscale) return `×${params.outscale}`;
  return '';
}

// -- cards -------------------------------------------------------------------------------------

function renderCards(data) {
  const system = data.system, busy = system.max_workers ? Math.min(100, 100 * system.active_workers / system.max_workers) : 0;
  const cards = [
    `<div class="card system" data-stat="workers"><div class="num">${esc(system.active_workers)} / ${esc(system.max_workers)}</div>
      <div class="label">workers busy</div><div class="meter"><span style="width:${busy.toFixed(0)}%"></span></div></div>`,
    `<div class="card system" data-stat="queue_size"><div class="num">${esc(system.queue_size)}</div><div class="label">queued</div></div>`,
  ].concat(['pending', 'processing', 'completed', 'failed', 'canceled'].map(status =>
    `<div class="card ${status}" data-stat="${status}"><div class="num">${esc(data.stats[status] ?? 0)}</div>
      <div class="label">${status}</div></div>`));
  const html = cards.join('');
  if ($('cards').dataset.html !== html) { $('cards').innerHTML = html; $('cards').dataset.html = html; }
}

// -- task table --------------------------------------------------------------------------------
// Rows are kept per task and each cell is rewritten only when its content changes, so a click on
// a cancel button or an output link is never lost to a refresh.

function taskCell(task) {
  return `<code title="${esc(task.task_id)}">${esc(task.task_id.slice(0, 8))}</code>
    <div class="sub" title="${esc(task.created_at)}">${localTime(task.created_at)}</div>`;
}
function inputCell(task) {
  const p = task.params || {}, name = esc(fileName(p.url || ''));
  const link = isHttpUrl(p.url) ? `<a class="input-name" href="${esc(p.url)}" title="${esc(p.url)}" target="_blank" rel="noopener noreferrer">${name}</a>`
    : `<span class="input-name" title="${esc(p.url)}">${name}</span>`;
  const facts = [p.type, p.model, sizing(p), p.seed != null ? 'seed ' + p.seed : ''].filter(Boolean).map(esc);
  return `${link}<div class="sub">${facts.join(' · ')}</div>`;
}
function statusCell(task) {
  let html = `<span class="badge ${esc(task.status)}">${esc(task.status)}</span>`;
  // Timestamps have whole seconds only, so the time taken is the sum of the stages' durations.
  const durations = (task.stages || []).map(stage => stage.duration).filter(d => d != null);
  if (FINISHED.includes(task.status) && durations.length)
    html += `<div class="sub">${seconds(durations.reduce((a, b) => a + b, 0))} in all</div>`;
  if (task.error) html += `<div class="error">${esc(task.error)}</div>`;
  return html;
}
function stagesCell(task) {
  const chips = (task.stages || []).map(stage =>
    `<span class="stage ${esc(stage.status)}" title="${esc(stage.name)}: ${esc(stage.status)}">${esc(stage.name)}` +
    (stage.duration != null ? ' ' + esc(seconds(stage.duration)) : '') + '</span>').join('');
  return `<div class="stages">${chips}</div>${progress(task)}`;
}
function progress(task) {
  if (task.status === 'pending') return '<div class="sub">waiting for a worker</div>';
  if (task.status !== 'processing') return '';
  const stage = (task.stages || []).find(s => s.status === 'running');
  const detail = (stage && stage.detail) || {};
  if (detail.frames_total) {
    const percent = Math.min(100, 100 * detail.frames_done / detail.frames_total);
    const eta = detail.eta_s != null ? 'ETA ' + clock(detail.eta_s) : 'ETA …';
    return `<div class="progress" data-percent="${percent.toFixed(1)}"><div class="bar"><span style="width:${percent.toFixed(1)}%"></span></div>
      <div class="sub">${esc(detail.frames_done)} / ${esc(detail.frames_total)} frames · ${esc(Number(detail.fps || 0).toFixed(1))} fps · ${esc(eta)}</div></div>`;
  }
  const doing = stage ? {download: 'downloading', process: 'upscaling', upload: 'uploading'}[stage.name] || stage.name : 'starting';
  return `<div class="progress"><div class="bar indeterminate"><span></span></div><div class="sub">${esc(doing)}…</div></div>`;
}
function outputCell(task) {
  const output = task.output;
  if (!output) return '';
  if (output.expired) return '<span class="sub">expired (retention)</span>';
  if (!output.url) return '';
  const m = output.metadata || {};
  const facts = [];
  if (m.width && m.height) facts.push(`${m.width}×${m.height}`);
  if (m.format) facts.push(m.format);
  if (m.frames) facts.push(`${m.frames} frames`);
  if (m.bytes != null) facts.push(bytes(m.bytes));
  const name = esc(fileName(output.url));
  const link = isHttpUrl(output.url)
    ? `<a class="output-link" href="${esc(output.url)}" target="_blank" rel="noopener">${name}</a>`
    : `<span title="${esc(output.url)}">${name}</span>`;
  return `${link}<div class="sub">${esc(facts.join(' · '))}</div>`;
}
function actionCell(task) {
  return FINISHED.includes(task.status) ? ''
    : `<button type="button" class="cancel" data-cancel="${esc(task.task_id)}">Cancel</button>`;
}
const COLUMNS = {task: taskCell, input: inputCell, status: statusCell, stages: stagesCell,
                 output: outputCell, action: actionCell};
const rows = new Map();  // task_id → {tr, html: [cell html…]}
let freshTaskId = null;

function renderTasks(tasks) {
  const body = $('tasks'), seen = new Set();
  tasks.forEach((task, index) => {
    let row = rows.get(task.task_id);
    if (!row) {
      const tr = document.createElement('tr');
      tr.dataset.taskId = task.task_id;
      tr.innerHTML = Object.keys(COLUMNS).map(name => `<td class="col-${name}"></td>`).join('');
      if (task.task_id === freshTaskId) tr.classList.add('fresh');
      row = {tr, html: []};
      rows.set(task.task_id, row);
    }
    row.tr.dataset.status = task.status;
    Object.values(COLUMNS).forEach((column, i) => {
      const html = column(task);
      if (row.html[i] !== html) { row.tr.cells[i].innerHTML = html; row.html[i] = html; }
    });
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    seen.add(task.task_id);
  });
  for (const [id, row] of rows) if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
  $('no-tasks').hidden = tasks.length > 0;
}

// Output files of the service itself need the token too: with one, the file is fetched with it
// and shown from memory. The token is never sent to another origin (OSS links are pre-signed).
$('tasks').addEventListener('click', async event => {
  const cancel = event.target.closest('button[data-cancel]');
  if (cancel) return cancelTask(cancel);
  const link = event.target.closest('a.output-link');
  if (!link || !token || !isSameOrigin(link.href)) return;
  event.preventDefault();
  const tab = window.open('', '_blank');  // opened during the click, so no popup blocker stops it
  try {
    const response = await fetch(link.href, {headers: authHeaders(), cache: 'no-store'});
    if (response.status === 401) { askForToken(); throw new Error('API token refused'); }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    if (tab) tab.location = url; else location.assign(url);
  } catch (error) {
    if (tab) tab.close();
    showMessage('Could not open the output: ' + error.message, false);
  }
});

async function cancelTask(button) {
  button.disabled = true;
  button.textContent = 'Canceling…';
  const id = button.dataset.cancel;
  try {
    await callApi('DELETE', 'tasks/' + encodeURIComponent(id));
    showMessage(`Canceled task ${id.slice(0, 8)}.`, true);
  } catch (error) {
    if (!(error instanceof Unauthorized)) showMessage(`Could not cancel ${id.slice(0, 8)}: ${error.message}`, false);
    button.disabled = false;
    button.textContent = 'Cancel';
  }
  refresh();
}

// -- submit form -------------------------------------------------------------------------------

const form = $('submit-form');
const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|mkv|webm|avi|flv|ts|mpe?g|gif)$/i;
const IMAGE_EXTENSIONS = /\.(png|jpe?g|webp|bmp|tiff?)$/i;
let typeChosen = false;  // once the user picks a type, the URL no longer guesses it
form.elements.type.addEventListener('change', () => { typeChosen = true; });
form.elements.url.addEventListener('input', () => {
  if (typeChosen) return;
  const path = form.elements.url.value.split(/[?#]/)[0];
  if (IMAGE_EXTENSIONS.test(path)) form.elements.type.value = 'image';
  else if (VIDEO_EXTENSIONS.test(path)) form.elements.type.value = 'video';
});
function updateSeedvr2Fields() {
  const seedvr2 = /seedvr2/i.test(form.elements.model.value);
  form.elements.resolution.disabled = !seedvr2;
  form.elements.seed.disabled = !seedvr2;
}
form.elements.model.addEventListener('input', updateSeedvr2Fields);

function showMessage(text, ok) {
  const message = $('submit-message');
  message.textContent = text;
  message.className = ok ? 'ok-text' : 'error-text';
}

form.addEventListener('submit', async event => {
  event.preventDefault();
  const f = form.elements, body = {url: f.url.value.trim(), type: f.type.value};
  const number = field => field.value.trim() === '' ? null : Number(field.value);
  if (f.model.value.trim()) body.model = f.model.value.trim();
  for (const name of ['outscale', 'output_magnification']) if (number(f[name]) != null) body[name] = number(f[name]);
  const width = number(f.output_width), height = number(f.output_height);
  if ((width == null) !== (height == null)) return showMessage('Give both output width and height, or neither.', false);
  if (width != null) body.output_dims = [width, height];
  if (!f.resolution.disabled && number(f.resolution) != null) body.resolution = number(f.resolution);
  if (!f.seed.disabled && number(f.seed) != null) body.seed = number(f.seed);
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const created = await callApi('POST', 'tasks', body);
    freshTaskId = created.task_id;
    showMessage(`Submitted task ${created.task_id}.`, true);
    f.url.value = '';
  } catch (error) {
    if (error instanceof Unauthorized) showMessage('Not submitted: the service needs its API token (above).', false);
    else showMessage('Not submitted: ' + error.message + (error.retryAfter ? ` (retry in ${error.retryAfter} s)` : ''), false);
  } finally {
    button.disabled = false;
  }
  refresh();
});

// Model names: those recent tasks used (the API has no model listing; a wrong name gets a 400
// that lists the available ones).
const knownModels = new Set();
function addModels(names) {
  let added = false;
  for (const name of names) if (name && !knownModels.has(name)) { knownModels.add(name); added = true; }
  if (added) $('model-names').innerHTML = [...knownModels].sort().map(n => `<option value="${esc(n)}">`).join('');
}

// -- refresh loop ------------------------------------------------------------------------------

function setLive(state, text) {
  $('live').className = state;
  $('live').textContent = text;
}
let refreshing = null, refreshAgain = false;
function refresh() {
  // One request at a time, so an older answer never overwrites a newer one; a refresh asked for
  // meanwhile (after a submit or a cancel) runs right after.
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => {
    do { refreshAgain = false; await refreshOnce(); } while (refreshAgain);
    refreshing = null;
  })();
  return refreshing;
}
async function refreshOnce() {
  try {
    const data = await callApi('GET', 'monitor/stats');
    $('token-banner').hidden = true;
    $('token-state').hidden = !token;
    renderCards(data);
    renderTasks(data.tasks || []);
    addModels((data.tasks || []).map(t => t.params && t.params.model));
    setLive('ok', 'live · updated ' + timeOfDay(new Date()));
  } catch (error) {
    if (!(error instanceof Unauthorized)) setLive('down', 'service unreachable: ' + error.message);
  }
}
async function refreshForever() {
  if (document.visibilityState !== 'hidden') await refresh();
  setTimeout(refreshForever, REFRESH_MS);
}
refreshForever();
</script></body></html>
"""
