// Text for the page: escaping and the formats of times, sizes and names.
'use strict';

export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
}

export function seconds(value) {
  if (value == null) return '';
  return value < 10 ? value.toFixed(2) + ' s' : value < 600 ? value.toFixed(1) + ' s' : clock(value);
}
export function clock(total) {
  total = Math.max(0, Math.round(total));
  const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = total % 60;
  return (h ? h + ':' + String(m).padStart(2, '0') : m) + ':' + String(s).padStart(2, '0');
}
export function bytes(n) {
  if (n == null) return '';
  return n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KB' : (n / 1048576).toFixed(1) + ' MB';
}
const two = n => String(n).padStart(2, '0');
export function timeOfDay(date) {
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}
export function localTime(iso) {
  const date = new Date(iso);
  if (isNaN(date)) return esc(iso);
  if (date.toDateString() === new Date().toDateString()) return timeOfDay(date);
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${timeOfDay(date)}`;
}
export function fileName(url) {
  try { return decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() || url); }
  catch (_) { return url; }
}
export function sizing(params) {
  if (params.resolution) return `→ ${params.resolution}p`;
  if (params.output_dims) return `→ ${params.output_dims[0]}×${params.output_dims[1]}`;
  if (params.output_magnification) return `×${params.output_magnification} of input`;
  if (params.outscale) return `×${params.outscale}`;
  return '';
}

