// The before/after view of a finished task: input and output fill one stage of the output's
// shape, the output clipped at a split the user drags; for a video, both seeked to one time.
'use strict';

import {isHttpUrl, viewableUrl} from './api.js';

const $ = id => document.getElementById(id);
const ZOOM_STEP = 1.5;
const WHEEL_STEP = 1.15;
const MAX_PIXEL_ZOOM = 8;  // output pixels per screen pixel, at most

const view = {width: 0, height: 0, fit: 1, zoom: 1, media: [], objectUrl: null};

export function canCompare(task) {
  const output = task.output;
  return task.status === 'completed' && output && output.url && !output.expired
    && isHttpUrl(output.url) && isHttpUrl((task.params || {}).url);
}

export async function openCompare(task) {
  const m = task.output.metadata || {}, video = task.params.type === 'video';
  view.width = m.width || 1;
  view.height = m.height || 1;
  $('compare-facts').textContent = `${task.task_id.slice(0, 8)} · ${task.params.model || ''} · output ${view.width}×${view.height}`;
  $('compare-message').textContent = '';
  $('compare-time-control').hidden = !video;
  $('compare').showModal();
  const outputUrl = await viewableUrl(task.output.url).catch(error => {
    $('compare-message').textContent = 'Could not load the output: ' + error.message;
    return null;
  });
  if (outputUrl === null) return;
  view.objectUrl = outputUrl.startsWith('blob:') ? outputUrl : null;
  view.media = [layer('compare-before', task.params.url, video), layer('compare-after', outputUrl, video)];
  if (video) syncTimes();
  view.zoom = 1;
  zoomTo(1);
  setSplit(50);
}

function layer(id, url, video) {
  const element = document.createElement(video ? 'video' : 'img');
  element.src = url;
  element.draggable = false;  // a drag on the picture moves the split, it does not carry the image away
  if (video) Object.assign(element, {muted: true, preload: 'auto', playsInline: true});
  else element.alt = id === 'compare-before' ? 'input' : 'output';
  element.addEventListener('error', () => {
    $('compare-message').textContent = `Could not show the ${element === view.media[0] ? 'input' : 'output'} here.`;
  });
  $(id).replaceChildren(element);
  return element;
}

function closeCompare() {
  for (const element of view.media) element.removeAttribute('src');
  $('compare-before').replaceChildren();
  $('compare-after').replaceChildren();
  if (view.objectUrl) URL.revokeObjectURL(view.objectUrl);
  view.media = [];
  view.objectUrl = null;
}

// -- split -------------------------------------------------------------------------------------

function setSplit(percent) {
  const split = Math.min(100, Math.max(0, percent));
  $('compare-after').style.clipPath = `inset(0 0 0 ${split}%)`;
  $('compare-divider').style.left = split + '%';
  $('compare-split').value = split;
  $('compare-stage').dataset.split = split.toFixed(1);
}
function splitAtPointer(event) {
  const rect = $('compare-stage').getBoundingClientRect();
  setSplit(100 * (event.clientX - rect.left) / rect.width);
}

// -- zoom: 1 is the whole output in the viewport; the stage grows and the viewport scrolls ---------

function zoomTo(zoom, anchor) {
  const viewport = $('compare-viewport'), box = viewport.getBoundingClientRect();
  view.fit = Math.min(viewport.clientWidth / view.width, viewport.clientHeight / view.height);
  const previous = view.zoom;
  view.zoom = Math.min(Math.max(1, zoom), Math.max(1, MAX_PIXEL_ZOOM / view.fit));
  const stage = $('compare-stage'), scale = view.fit * view.zoom;
  stage.style.width = view.width * scale + 'px';
  stage.style.height = view.height * scale + 'px';
  stage.classList.toggle('pixels', scale >= 2);
  $('compare-zoom-level').textContent = Math.round(scale * 100) + '%';  // of the output's pixels
  // The point under the pointer (or the viewport's centre) stays where it was.
  const x = anchor ? anchor.clientX - box.left : viewport.clientWidth / 2;
  const y = anchor ? anchor.clientY - box.top : viewport.clientHeight / 2;
  const ratio = view.zoom / previous;
  viewport.scrollLeft = (viewport.scrollLeft + x) * ratio - x;
  viewport.scrollTop = (viewport.scrollTop + y) * ratio - y;
}

// -- video: both seeked to one time ------------------------------------------------------------

function syncTimes() {
  const slider = $('compare-time');
  slider.value = 0;
  const ready = view.media.map(video => new Promise(resolve => video.addEventListener('loadedmetadata', resolve, {once: true})));
  Promise.all(ready).then(() => {
    slider.max = Math.min(...view.media.map(video => video.duration || 0));
    if (view.media.some(video => !video.seekable.length))
      $('compare-message').textContent = 'A server here answers no range requests, so its video cannot be seeked.';
    seekBoth(0);
  });
}
function seekBoth(seconds) {
  for (const video of view.media) video.currentTime = seconds;
  $('compare-time-text').textContent = seconds.toFixed(2) + ' s';
}

// -- wiring ------------------------------------------------------------------------------------

export function wireCompare() {
  const stage = $('compare-stage');
  stage.addEventListener('pointerdown', event => { stage.setPointerCapture(event.pointerId); splitAtPointer(event); });
  stage.addEventListener('pointermove', event => { if (stage.hasPointerCapture(event.pointerId)) splitAtPointer(event); });
  $('compare-split').addEventListener('input', event => setSplit(Number(event.target.value)));
  $('compare-time').addEventListener('input', event => seekBoth(Number(event.target.value)));
  $('compare-viewport').addEventListener('wheel', event => {
    event.preventDefault();
    zoomTo(view.zoom * (event.deltaY < 0 ? WHEEL_STEP : 1 / WHEEL_STEP), event);
  }, {passive: false});
  document.querySelectorAll('#compare [data-zoom]').forEach(button => button.addEventListener('click', () => {
    const step = {in: ZOOM_STEP, out: 1 / ZOOM_STEP}[button.dataset.zoom];
    zoomTo(step ? view.zoom * step : 1);
  }));
  $('compare-close').addEventListener('click', () => $('compare').close());
  $('compare').addEventListener('close', closeCompare);
}
