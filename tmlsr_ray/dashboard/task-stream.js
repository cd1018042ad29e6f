// A task's event stream (GET tasks/{id}/events, server-sent events), read with fetch rather than
// EventSource: EventSource cannot send the Authorization header a service with an API token needs,
// and cannot tell a missing route (404) from a dropped connection.
'use strict';

import {API_ROOT, authHeaders, parseJson} from './api.js';

// Splits the stream's text into events: "field: value" lines, a blank line ends an event,
// lines starting with ":" are comments (the heartbeats).
export class EventStreamParser {
  constructor() { this.buffer = ''; this.event = {}; }

  push(chunk) {
    const text = this.buffer + chunk;
    // A CR at the end may be the first half of a CRLF: it waits for the next chunk.
    const cut = text.endsWith('\r') ? text.length - 1 : text.length;
    const lines = text.slice(0, cut).split(/\r\n|\r|\n/);
    this.buffer = lines.pop() + text.slice(cut);
    const events = [];
    for (const line of lines) {
      if (line === '') {
        if (this.event.data !== undefined) events.push(this.event);
        this.event = {};
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') this.event.data = this.event.data === undefined ? value : this.event.data + '\n' + value;
        else if (field === 'event' || field === 'id') this.event[field] = value;
      }
    }
    return events;
  }
}

// Calls onView with each task view the stream carries. Resolves 'ended' after the final event,
// 'missing' when the service has no such route (404/405: follow by polling from then on), and
// 'broken' when the stream could not be read to its end.
export async function followTask(taskId, onView, signal) {
  let response;
  try {
    response = await fetch(`${API_ROOT}tasks/${encodeURIComponent(taskId)}/events`,
                           {headers: authHeaders({Accept: 'text/event-stream'}), cache: 'no-store', signal});
  } catch (_) {
    return 'broken';
  }
  if (response.status === 404 || response.status === 405) return 'missing';
  if (!response.ok || !(response.headers.get('Content-Type') || '').startsWith('text/event-stream')) return 'broken';
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new EventStreamParser();
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return 'broken';
      for (const event of parser.push(value)) {
        if (event.data) onView(parseJson(event.data));
        if (event.event === 'end') { reader.cancel(); return 'ended'; }
      }
    }
  } catch (_) {
    return 'broken';
  }
}
