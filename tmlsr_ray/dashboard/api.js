// Calls to the service's API: paths relative to the page's prefix, the API token on every call.
'use strict';

const TOKEN_KEY = 'tmlsr-api-token';
// The page is served at <prefix>/dashboard; API paths are resolved against <prefix>/ so the
// service works under any route prefix.
export const API_ROOT = location.pathname.replace(/\/dashboard\/?$/, '/');

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let onUnauthorized = () => {};

export class Unauthorized extends Error {}

export const hasToken = () => Boolean(token);
export function setToken(value) {
  token = value;
  if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
}
export function whenUnauthorized(handler) { onUnauthorized = handler; }

export function authHeaders(headers = {}) {
  return token ? {...headers, Authorization: 'Bearer ' + token} : headers;
}
export function isHttpUrl(url) {
  try { return ['http:', 'https:'].includes(new URL(url).protocol); } catch (_) { return false; }
}
export function isSameOrigin(url) {
  try { return new URL(url, location.href).origin === location.origin; } catch (_) { return false; }
}

// JSON text of a request body whose BigInt fields are written as the integers they are: JSON.stringify
// refuses a BigInt, and a Number past 2**53 is rounded (a seed goes up to 2**63 - 1). Top-level
// fields only (a nested BigInt still throws), appended after the others; JSON.rawJSON would do it,
// but not in every browser yet.
export function jsonText(body) {
  const exact = Object.entries(body).filter(([, value]) => typeof value === 'bigint');
  const text = JSON.stringify(body, function (key, value) {
    return this === body && typeof value === 'bigint' ? undefined : value;
  });
  if (!exact.length) return text;
  const fields = exact.map(([name, value]) => JSON.stringify(name) + ':' + value.toString());
  return text.slice(0, -1) + (text === '{}' ? '' : ',') + fields.join(',') + '}';
}

// The API's JSON with a seed past 2**53 (they go up to 2**63 - 1) read as the BigInt its digits
// say, where the browser gives a number's source text (Chrome 114, Firefox 135); elsewhere it is
// the rounded Number it always was. Seeds only: other fields are computed with as Numbers.
export function parseJson(text) {
  return JSON.parse(text, (key, value, context) =>
    key === 'seed' && !Number.isSafeInteger(value) && /^\d+$/.test(context?.source) ? BigInt(context.source) : value);
}

export async function callApi(method, path, body) {
  const init = {method, cache: 'no-store', headers: authHeaders(body ? {'Content-Type': 'application/json'} : {})};
  if (body !== undefined) init.body = jsonText(body);
  const response = await fetch(API_ROOT + path, init);
  let data = null;
  try { data = parseJson(await response.text()); } catch (_) { /* an empty or non-JSON body */ }
  if (response.status === 401) {
    onUnauthorized();
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

// Output files of the service itself need the token too: with one, the file is fetched with it
// and shown from memory. The token is never sent to another origin (OSS links are pre-signed).
export async function viewableUrl(url) {
  if (!token || !isSameOrigin(url)) return url;
  const response = await fetch(url, {headers: authHeaders(), cache: 'no-store'});
  if (response.status === 401) { onUnauthorized(); throw new Error('API token refused'); }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return URL.createObjectURL(await response.blob());
}
