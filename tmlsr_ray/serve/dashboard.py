"""The dashboard page: one self-contained HTML document (no CDN, no build step)."""

DASHBOARD_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TMLSR-Ray</title>
<style>
 body{font:14px system-ui,sans-serif;margin:2em;color:#222}
 table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
 .cards{display:flex;gap:1em;margin-bottom:1em} .card{border:1px solid #ccc;border-radius:6px;padding:8px 16px}
 .completed{color:#080}.failed{color:#b00}.processing{color:#06c}.canceled{color:#888}
 form input{margin-right:6px}
</style></head><body>
<h1>TMLSR-Ray</h1>
<div class="cards" id="cards"></div>
<form id="submit"><input name="url" size="60" placeholder="https://…/input.png" required>
<select name="type"><option>image</option><option>video</option></select>
<input name="outscale" size="4" placeholder="outscale"><button>Submit</button> <span id="msg"></span></form>
<h2>Recent tasks</h2>
<table><thead><tr><th>task</th><th>status</th><th>created</th><th>stages</th><th>output</th><th></th></tr></thead>
<tbody id="tasks"></tbody></table>
<script>
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
async function refresh() {
  const r = await fetch('monitor/stats'); const d = await r.json();
  document.getElementById('cards').innerHTML =
    Object.entries(d.system).concat(Object.entries(d.stats))
      .map(([k, v]) => `<div class="card"><b>${esc(v)}</b><br>${esc(k)}</div>`).join('');
  document.getElementById('tasks').innerHTML = d.tasks.map(t => `<tr>
    <td><code>${esc(t.task_id)}</code></td><td class="${esc(t.status)}">${esc(t.status)}${t.error ? ': ' + esc(t.error) : ''}</td>
    <td>${esc(t.created_at)}</td>
    <td>${t.stages.map(s => esc(s.name) + ' ' + esc(s.status) + (s.duration != null ? ' ' + s.duration.toFixed(2) + 's' : '')).join(', ')}</td>
    <td>${t.output && t.output.url ? `<a href="${esc(t.output.url)}">output</a>` : ''}</td>
    <td>${['pending','processing'].includes(t.status) ? `<button onclick="cancelTask('${esc(t.task_id)}')">cancel</button>` : ''}</td></tr>`).join('');
}
async function cancelTask(id) { await fetch('tasks/' + id, {method: 'DELETE'}); refresh(); }
document.getElementById('submit').onsubmit = async e => {
  e.preventDefault(); const f = new FormData(e.target); const body = {url: f.get('url'), type: f.get('type')};
  if (f.get('outscale')) body.outscale = Number(f.get('outscale'));
  const r = await fetch('tasks', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const d = await r.json(); document.getElementById('msg').textContent = r.ok ? 'submitted ' + d.task_id : (d.error || r.status);
  refresh();
};
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""
