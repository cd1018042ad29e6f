// The dashboard: cards and recent tasks from monitor/stats (every 2 s), each running task followed
// live through its event stream, the submit form, the API token, the before/after view.
'use strict';

import {Unauthorized, callApi, hasToken, isHttpUrl, setToken, viewableUrl, whenUnauthorized} from './api.js';
import {canCompare, openCompare, wireCompare} from './compare.js';
import {bytes, clock, esc, fileName, localTime, seconds, sizing, timeOfDay} from './format.js';
import {followTask} from './task-stream.js';

const REFRESH_MS = 2000;
// Browsers open about six connections to one server over HTTP/1.1: streams take at most three,
// so the refresh and the user's calls always get one. Other running tasks are polled.
const MAX_STREAMS = 3;
const $ = id => document.getElementById(id);

// What the service says of itself: the statuses a task never leaves (GET health), its models
// (GET models), whether it has the event route.
const service = {finalStatuses: null, models: null, hasEvents: true};
const isFinal = status => service.finalStatuses.has(status);

// -- API token ---------------------------------------------------------------------------------

function askForToken() {
  $('token-reason').textContent = hasToken()
    ? 'The token in use was refused: enter the right one.'
    : 'This service needs its API token for task data: enter it to see and submit tasks.';
  const banner = $('token-banner');
  if (banner.hidden) { banner.hidden = false; $('token-input').focus(); }
  $('token-state').hidden = true;
  setLive('down', 'needs API token');
}
whenUnauthorized(askForToken);
$('token-banner').addEventListener('submit', event => {
  event.preventDefault();
  setToken($('token-input').value.trim());
  $('token-input').value = '';
  $('token-banner').hidden = true;
  refresh();
});
$('forget-token').addEventListener('click', () => {
  setToken('');
  $('token-state').hidden = true;
  refresh();
});

// -- cards -------------------------------------------------------------------------------------

function renderCards(data) {
  const system = data.system, busy = system.max_workers ? Math.min(100, 100 * system.active_workers / system.max_workers) : 0;
  const cards = [
    `<div class="card system" data-stat="workers"><div class="num">${esc(system.active_workers)} / ${esc(system.max_workers)}</div>
      <div class="label">workers busy</div><div class="meter"><span style="width:${busy.toFixed(0)}%"></span></div></div>`,
    `<div class="card system" data-stat="queue_size"><div class="num">${esc(system.queue_size)}</div><div class="label">queued</div></div>`,
  ].concat(Object.entries(data.stats).map(([status, count]) =>
    `<div class="card ${esc(status)}" data-stat="${esc(status)}"><div class="num">${esc(count)}</div>
      <div class="label">${esc(status)}</div></div>`));
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
  if (isFinal(task.status) && durations.length)
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
  const compare = canCompare(task)
    ? `<button type="button" class="compare" data-compare="${esc(task.task_id)}">Before / after</button>` : '';
  return `${link}${compare}<div class="sub">${esc(facts.join(' · '))}</div>`;
}
function actionCell(task) {
  return isFinal(task.status) ? ''
    : `<button type="button" class="cancel" data-cancel="${esc(task.task_id)}">Cancel</button>`;
}
const COLUMNS = {task: taskCell, input: inputCell, status: statusCell, stages: stagesCell,
                 output: outputCell, action: actionCell};
const rows = new Map();  // task_id → {tr, html: [cell html…], task}
let freshTaskId = null;

function renderRow(row, task) {
  row.task = task;
  row.tr.dataset.status = task.status;
  Object.values(COLUMNS).forEach((column, i) => {
    const html = column(task);
    if (row.html[i] !== html) { row.tr.cells[i].innerHTML = html; row.html[i] = html; }
  });
}
function newRow(task) {
  const tr = document.createElement('tr');
  tr.dataset.taskId = task.task_id;
  tr.innerHTML = Object.keys(COLUMNS).map(name => `<td class="col-${name}"></td>`).join('');
  if (task.task_id === freshTaskId) tr.classList.add('fresh');
  const row = {tr, html: [], task};
  rows.set(task.task_id, row);
  return row;
}

function renderTasks(tasks) {
  const body = $('tasks'), seen = new Set();
  tasks.forEach((listed, index) => {
    const row = rows.get(listed.task_id) || newRow(listed);
    renderRow(row, newest(listed));
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    seen.add(listed.task_id);
  });
  for (const [id, row] of rows) if (!seen.has(id)) { row.tr.remove(); rows.delete(id); stopFollowing(id); }
  $('no-tasks').hidden = tasks.length > 0;
  followRunningTasks(tasks);
}

// -- live rows: each running task's event stream, at most MAX_STREAMS at once -------------------

const streams = new Map();    // task_id → AbortController
const streamed = new Map();   // task_id → the latest view its stream carried
const unstreamable = new Set();  // tasks whose stream broke: the refresh polls them

// A refresh may carry a view older than the stream's latest; a final one is never older.
function newest(listed) {
  const view = streamed.get(listed.task_id);
  if (isFinal(listed.status) || !view) { streamed.delete(listed.task_id); return listed; }
  return view;
}
function followRunningTasks(tasks) {
  for (const listed of tasks) {
    if (!service.hasEvents || streams.size >= MAX_STREAMS) return;
    const task = streamed.get(listed.task_id) || listed;
    if (isFinal(task.status) || streams.has(task.task_id) || unstreamable.has(task.task_id)) continue;
    follow(task.task_id);
  }
}
async function follow(taskId) {
  const controller = new AbortController();
  streams.set(taskId, controller);
  const outcome = await followTask(taskId, view => {
    streamed.set(taskId, view);
    const row = rows.get(taskId);
    if (row) renderRow(row, view);
  }, controller.signal);
  streams.delete(taskId);
  if (outcome === 'missing') service.hasEvents = false;
  if (outcome === 'broken' && !controller.signal.aborted) unstreamable.add(taskId);
}
function stopFollowing(taskId) {
  const controller = streams.get(taskId);
  if (controller) controller.abort();
  streamed.delete(taskId);
  unstreamable.delete(taskId);
}

$('tasks').addEventListener('click', async event => {
  const cancel = event.target.closest('button[data-cancel]');
  if (cancel) return cancelTask(cancel);
  const compare = event.target.closest('button[data-compare]');
  if (compare) return openCompare(rows.get(compare.dataset.compare).task);
  const link = event.target.closest('a.output-link');
  if (!link || !hasToken()) return;
  event.preventDefault();
  const tab = window.open('', '_blank');  // opened during the click, so no popup blocker stops it
  try {
    const url = await viewableUrl(link.href);
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
form.elements.type.addEventListener('change', () => { typeChosen = true; updateFormats(); });
form.elements.url.addEventListener('input', () => {
  if (typeChosen) return;
  const path = form.elements.url.value.split(/[?#]/)[0];
  if (IMAGE_EXTENSIONS.test(path)) form.elements.type.value = 'image';
  else if (VIDEO_EXTENSIONS.test(path)) form.elements.type.value = 'video';
  updateFormats();
});

// The output formats POST tasks takes for the chosen type ('' leaves the service's default).
const OUTPUT_FORMATS = {
  video: [['', 'MP4'], ['mkv', 'Matroska'], ['mov', 'QuickTime']],
  image: [['', "the input's"], ['png', 'PNG'], ['jpeg', 'JPEG'], ['webp', 'WebP']],
};
function updateFormats() {
  const select = form.elements.output_format, formats = OUTPUT_FORMATS[form.elements.type.value];
  if (select.dataset.type === form.elements.type.value) return;
  const chosen = select.value;
  select.replaceChildren(...formats.map(([value, label]) => new Option(label, value)));
  select.value = formats.some(([value]) => value === chosen) ? chosen : '';
  select.dataset.type = form.elements.type.value;
}
updateFormats();

// The model choice, from GET models: each option shows its family and scale; files the service
// cannot serve are listed, disabled, with the reason. The model's own facts enable the fields
// that apply to it: resolution for a model of any scale, seed for a seeded one.
function renderModels(models) {
  const select = form.elements.model, chosen = select.value;
  const options = models.map(model => {
    const facts = model.error ? 'cannot serve: ' + model.error
      : [model.family, model.scale ? '×' + model.scale : 'any scale', model.architecture].filter(Boolean).join(' · ');
    return `<option value="${esc(model.name)}"${model.error ? ' disabled' : ''} title="${esc(facts)}">${esc(model.name)} — ${esc(facts)}</option>`;
  });
  select.innerHTML = '<option value="">service default</option>' + options.join('');
  select.value = chosen;
  updateModelFields();
}
function updateModelFields() {
  const model = (service.models || []).find(m => m.name === form.elements.model.value);
  form.elements.resolution.disabled = !(model && model.scale == null);
  form.elements.seed.disabled = !(model && model.seeded);
}
form.elements.model.addEventListener('change', updateModelFields);

function showMessage(text, ok) {
  const message = $('submit-message');
  message.textContent = text;
  message.className = ok ? 'ok-text' : 'error-text';
}

form.addEventListener('submit', async event => {
  event.preventDefault();
  const f = form.elements, body = {url: f.url.value.trim(), type: f.type.value};
  const number = field => field.value.trim() === '' ? null : Number(field.value);
  // a whole number as typed, exact past 2**53 (the service checks its range); else as a number
  const integer = field => /^\d+$/.test(field.value.trim()) ? BigInt(field.value.trim()) : number(field);
  if (f.model.value) body.model = f.model.value;
  for (const name of ['outscale', 'output_magnification']) if (number(f[name]) != null) body[name] = number(f[name]);
  const width = number(f.output_width), height = number(f.output_height);
  if ((width == null) !== (height == null)) return showMessage('Give both output width and height, or neither.', false);
  if (width != null) body.output_dims = [width, height];
  if (!f.resolution.disabled && number(f.resolution) != null) body.resolution = number(f.resolution);
  if (!f.seed.disabled && integer(f.seed) != null) body.seed = integer(f.seed);
  if (f.output_format.value) body.output_format = f.output_format.value;
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
async function learnService() {
  if (!service.finalStatuses) service.finalStatuses = new Set((await callApi('GET', 'health')).final_statuses || []);
  if (!service.models) {
    service.models = (await callApi('GET', 'models')).models;
    renderModels(service.models);
  }
}
async function refreshOnce() {
  try {
    await learnService();
    const data = await callApi('GET', 'monitor/stats');
    $('token-banner').hidden = true;
    $('token-state').hidden = !hasToken();
    renderCards(data);
    renderTasks(data.tasks || []);
    setLive('ok', 'live · updated ' + timeOfDay(new Date()));
  } catch (error) {
    if (!(error instanceof Unauthorized)) setLive('down', 'service unreachable: ' + error.message);
  }
}
async function refreshForever() {
  if (document.visibilityState !== 'hidden') await refresh();
  setTimeout(refreshForever, REFRESH_MS);
}
wireCompare();
refreshForever();
