/**
 * The cluster console: one static page, inline CSS and JS, no build step and
 * nothing fetched from elsewhere (brokers often run without internet). It
 * polls `/api/cluster` on the admin port that served it — the whole cluster,
 * gathered by that broker from every other one — and reads messages through
 * `/api/messages`. Everything it shows comes from that one answer, so the
 * headline numbers are the last points of the charts beside them.
 *
 * The admin token: the message browser needs it whenever the brokers have
 * one, and every `/api` call does under `--admin-protect-reads`. The
 * operator types it into the header; it is kept in sessionStorage (this tab
 * only, gone when the tab closes, never in the URL) and sent as
 * `Authorization: Bearer` on every `/api` call. A 401 says which it was:
 * no token entered, or a token the broker refused.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>relaymq console</title>
<style>
  :root { --bg:#0f1419; --panel:#182029; --line:#263140; --text:#e6e6e6; --muted:#8a96a3; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --a:#58a6ff; --b:#bc8cff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; flex-wrap:wrap; align-items:center; gap:16px; padding:12px 20px; background:var(--panel); border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  #health { padding:2px 10px; border-radius:10px; font-weight:600; }
  .muted { color:var(--muted); }
  .ok { color:var(--ok); } .warn { color:var(--warn); } .bad { color:var(--bad); }
  #health.ok { background:#12361d; } #health.bad { background:#4a1614; }
  main { display:grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap:16px; padding:16px 20px; }
  section { background:var(--panel); border-radius:8px; padding:12px 16px; min-width:0; }
  section.wide { grid-column: 1 / -1; }
  section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:0 0 8px; }
  .scroll { overflow-x:auto; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); font-variant-numeric:tabular-nums; vertical-align:top; }
  th { color:var(--muted); font-weight:500; white-space:nowrap; }
  td.num, th.num { text-align:right; }
  td.url { overflow-wrap:anywhere; word-break:break-all; min-width:10ch; }
  .headline { display:flex; gap:24px; align-items:baseline; margin-bottom:4px; }
  .headline b { font-size:22px; font-variant-numeric:tabular-nums; }
  .legend { display:flex; flex-wrap:wrap; gap:4px 14px; font-size:12px; color:var(--muted); margin-top:4px; }
  .legend i { display:inline-block; width:14px; height:3px; vertical-align:middle; margin-right:5px; }
  svg.chart { width:100%; height:auto; display:block; }
  .badge { display:inline-block; padding:0 6px; border-radius:8px; font-size:12px; margin:1px 2px 1px 0; background:#223040; white-space:nowrap; }
  .badge.ok { background:#12361d; } .badge.warn { background:#3b2e0c; } .badge.bad { background:#4a1614; }
  .bar { display:inline-block; width:60px; height:8px; background:#263140; border-radius:4px; vertical-align:middle; margin-right:6px; overflow:hidden; }
  .bar span { display:block; height:100%; background:var(--a); }
  #events { list-style:none; margin:0; padding:0; max-height:260px; overflow:auto; }
  #events li { padding:3px 0; border-bottom:1px solid var(--line); }
  #events time { color:var(--muted); margin-right:8px; font-variant-numeric:tabular-nums; }
  #problems { margin:0; padding-left:18px; color:var(--bad); }
  form { display:flex; flex-wrap:wrap; gap:8px; align-items:end; margin-bottom:8px; }
  label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); gap:2px; }
  input, select, button { background:#0f1419; color:var(--text); border:1px solid var(--line); border-radius:4px; padding:4px 6px; font:inherit; }
  button { cursor:pointer; background:#1f6feb; border-color:#1f6feb; }
  #browse-error, #auth { color:var(--bad); }
  header form { margin:0 0 0 auto; align-items:center; }
  header form label { flex-direction:row; align-items:center; gap:6px; }
  button.plain { background:transparent; border-color:var(--line); }
  #messages pre { margin:0; white-space:pre-wrap; overflow-wrap:anywhere; max-height:12em; overflow:auto; font:12px/1.35 ui-monospace, monospace; }
  footer { color:var(--muted); padding:0 20px 16px; }
</style>
</head>
<body>
<header>
  <h1>relaymq</h1>
  <span id="health" data-testid="health">loading…</span>
  <span id="reporter" class="muted"></span>
  <span id="updated" class="muted"></span>
  <span id="auth" data-testid="auth" role="alert"></span>
  <form id="token-form" data-testid="token-form" autocomplete="off">
    <label>admin token <input id="admin-token" type="password" size="18" autocomplete="off" spellcheck="false"></label>
    <button type="submit">Use</button>
    <button type="button" id="token-forget" class="plain">Forget</button>
    <span id="token-state" data-testid="token-state" class="muted"></span>
  </form>
</header>
<main>
  <section class="wide" id="problems-section" hidden>
    <h2>Problems</h2>
    <ul id="problems" data-testid="problems"></ul>
  </section>
  <section class="wide">
    <h2>Brokers</h2>
    <div class="scroll"><table id="brokers" data-testid="brokers"><thead><tr><th>broker</th><th>state</th><th>role</th><th class="num">leads</th><th class="num">connections</th><th class="num">in/s</th><th class="num">out/s</th><th>disk used</th><th class="num">data</th><th>url</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Cluster throughput (messages/s)</h2>
    <div class="headline"><span>in <b id="throughput-in" data-testid="throughput-in">–</b></span><span>out <b id="throughput-out" data-testid="throughput-out">–</b></span><span class="muted" id="throughput-at"></span></div>
    <svg id="throughput-chart" class="chart" viewBox="0 0 600 190" role="img" aria-label="cluster throughput chart"></svg>
    <div class="legend" id="throughput-legend"></div>
  </section>
  <section>
    <h2>Cluster publish latency (ms)</h2>
    <div class="headline"><span>p50 <b id="latency-p50" data-testid="latency-p50">–</b></span><span>p99 <b id="latency-p99" data-testid="latency-p99">–</b></span><span class="muted" id="latency-at"></span></div>
    <svg id="latency-chart" class="chart" viewBox="0 0 600 190" role="img" aria-label="cluster latency chart"></svg>
    <div class="legend" id="latency-legend"></div>
  </section>
  <section>
    <h2>Messages in per broker (messages/s)</h2>
    <svg id="broker-in-chart" class="chart" viewBox="0 0 600 190" role="img" aria-label="messages in per broker"></svg>
    <div class="legend" id="broker-in-legend"></div>
  </section>
  <section>
    <h2>Publish latency p99 per broker (ms)</h2>
    <svg id="broker-p99-chart" class="chart" viewBox="0 0 600 190" role="img" aria-label="publish latency p99 per broker"></svg>
    <div class="legend" id="broker-p99-legend"></div>
  </section>
  <section class="wide" id="backbone-section" hidden>
    <h2>Backbone (RabbitMQ) as the gateways see it</h2>
    <div class="scroll"><table id="backbone" data-testid="backbone"><thead><tr><th>gateway</th><th>backbone</th><th>connected to</th><th class="num">connections</th><th class="num">last confirm</th><th>nodes (last check)</th></tr></thead><tbody></tbody></table></div>
    <div class="scroll"><table id="stream-leaders" data-testid="stream-leaders"><thead><tr><th>partition</th><th>stream leader</th><th>stream</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide" id="moves-section" hidden>
    <h2>Moves in progress</h2>
    <div class="scroll"><table id="moves" data-testid="moves"><thead><tr><th>partition</th><th>from</th><th>to</th><th>phase</th><th>copied</th><th class="num">rate</th><th class="num">left</th><th class="num">for</th><th>last error</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide">
    <h2>Partitions</h2>
    <div class="scroll"><table id="partitions" data-testid="partitions"><thead><tr><th>partition</th><th>leader</th><th>replicas (state, entries behind the leader)</th><th class="num">messages</th><th class="num">end offset</th><th class="num">size on disk</th><th>status</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Topics</h2>
    <div class="scroll"><table id="topics" data-testid="topics"><thead><tr><th>topic</th><th class="num">partitions</th><th class="num">messages</th><th class="num">size on disk</th><th class="num">all replicas</th><th class="num">in/s</th><th class="num">out/s</th><th>status</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section>
    <h2>Consumer lag</h2>
    <div class="scroll"><table id="consumers" data-testid="consumers"><thead><tr><th>consumer</th><th>kind</th><th>partition</th><th class="num">position</th><th class="num">end</th><th class="num">lag</th></tr></thead><tbody></tbody></table></div>
    <p id="consumers-empty" class="muted">No committed consumer positions.</p>
  </section>
  <section class="wide">
    <h2>Message browser</h2>
    <form id="browse" data-testid="browse" novalidate>
      <label>topic <input id="browse-topic" name="topic" list="topic-names" required maxlength="255" size="24"></label>
      <datalist id="topic-names"></datalist>
      <label>partition <input id="browse-partition" name="partition" type="number" min="0" step="1" value="0" required style="width:6em"></label>
      <label>read <select id="browse-mode"><option value="last">last N</option><option value="from">from offset</option></select></label>
      <label>offset <input id="browse-from" name="from" type="number" min="0" step="1" value="0" style="width:8em" disabled></label>
      <label>N <input id="browse-count" name="count" type="number" min="1" max="100" step="1" value="20" required style="width:5em"></label>
      <label>show as <select id="browse-format"><option value="json">JSON</option><option value="text">text</option><option value="hex">hex</option></select></label>
      <button type="submit">Read</button>
      <span id="browse-error" data-testid="browse-error"></span>
    </form>
    <div class="scroll"><table id="messages" data-testid="messages"><thead><tr><th class="num">offset</th><th>time</th><th>key</th><th>headers</th><th class="num">bytes</th><th>data</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide">
    <h2>Recent events</h2>
    <ul id="events" data-testid="events"></ul>
  </section>
</main>
<footer>Refreshes every second. Charts: the last two minutes, one point per second; cluster figures add up the brokers that answered.</footer>
<script>
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const stateClass = (s) => (s === 'alive' || s === 'ok' || s === 'leader' || s === 'in-sync' ? 'ok' : s === 'suspect' || s === 'lagging' || s === 'under-replicated' || s === 'unknown' ? 'warn' : 'bad');
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  const fmtNum = (v) => (v === null || v === undefined ? '–' : String(v));
  /** Milliseconds with three significant digits at most (latency buckets are 10 % wide anyway). */
  const fmtMs = (v) => (v === null || v === undefined ? '–' : v >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3))));
  const fmtBytes = (b) => {
    if (b === null || b === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = b, u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return (u === 0 ? v : v.toFixed(1)) + ' ' + units[u];
  };
  /** A move's copy and time left, as relaymq cluster moves prints them. */
  const fmtCopied = (m) => (m.copiedBytes === null || m.copiedBytes === undefined || m.totalBytes === null || m.totalBytes === undefined ? '–' : fmtBytes(m.copiedBytes) + ' of ' + fmtBytes(m.totalBytes));
  const fmtLeft = (ms) => {
    if (ms === null || ms === undefined) return '–';
    if (ms <= 0) return '0 s';
    const s = Math.ceil(ms / 1000);
    return s < 120 ? '~' + s + ' s' : s < 7200 ? '~' + Math.round(s / 60) + ' min' : '~' + Math.round(s / 3600) + ' h';
  };
  const PALETTE = ['#58a6ff', '#bc8cff', '#3fb950', '#d29922', '#f778ba', '#39c5cf', '#ff7b72', '#a5d6ff'];
  let brokerColors = {};

  function rows(table, html) { $(table).querySelector('tbody').innerHTML = html.join(''); }

  // ---- the admin token: this tab's sessionStorage, sent as a bearer header on every /api call
  const TOKEN_KEY = 'relaymq.adminToken';
  const adminToken = () => sessionStorage.getItem(TOKEN_KEY) || '';
  function api(path) {
    const token = adminToken();
    return fetch(path, token ? { headers: { authorization: 'Bearer ' + token } } : undefined);
  }
  /** What a 401 means for the reader: no token entered yet, or one the broker refused. */
  function tokenNeeded(what) {
    return adminToken()
      ? 'The admin token was refused: ' + what + ' needs the brokers\\' --admin-token. Enter it under "admin token" above.'
      : what[0].toUpperCase() + what.slice(1) + ' needs the admin token (the brokers\\' --admin-token): enter it under "admin token" above.';
  }
  function showTokenState() {
    $('token-state').textContent = adminToken() ? 'set for this tab' : 'none';
    $('token-forget').hidden = !adminToken();
  }
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('admin-token').value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
    $('admin-token').value = '';
    showTokenState();
    $('auth').textContent = '';
    $('browse-error').textContent = '';
    refresh();
  });
  $('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    // What was read with the token goes with it.
    browsed = [];
    renderMessages();
    refresh();
  });
  /** Empties what the last /api/cluster answer showed: a page refused its data must not go on showing the old. */
  function clearCluster() {
    for (const table of ['brokers', 'partitions', 'topics', 'consumers', 'moves', 'backbone', 'stream-leaders']) rows(table, []);
    $('moves-section').hidden = true;
    $('backbone-section').hidden = true;
    $('events').innerHTML = '';
    $('problems-section').hidden = true;
    $('reporter').textContent = $('updated').textContent = '';
  }
  showTokenState();

  function renderCluster(c) {
    const health = $('health');
    health.textContent = c.healthy ? 'healthy' : 'unhealthy';
    health.className = c.healthy ? 'ok' : 'bad';
    $('reporter').textContent = 'answered by ' + c.broker + ' · gathered from ' + c.reached.length + ' of ' + (c.reached.length + c.unreachable.length) + ' brokers' +
      (c.unreachable.length ? ' (no answer: ' + c.unreachable.join(', ') + ')' : '');
    brokerColors = {};
    c.brokers.forEach((b, i) => { brokerColors[b.id] = PALETTE[i % PALETTE.length]; });
    rows('brokers', c.brokers.map((b) => {
      const disk = b.disk ? '<span class="bar"><span style="width:' + Math.min(100, b.disk.usedPercent) + '%"></span></span>' + b.disk.usedPercent + '% of ' + fmtBytes(b.disk.sizeBytes) : '–';
      return '<tr data-broker="' + esc(b.id) + '" data-state="' + esc(b.state) + '"><td>' + esc(b.id) + (b.self ? ' ●' : '') + '</td>' +
        '<td class="' + stateClass(b.state) + '" title="' + esc(b.error || '') + '">' + esc(b.state) + '</td>' +
        '<td data-role="' + esc(b.role) + '">' + esc(b.role) + '</td>' +
        '<td class="num">' + (b.role === 'gateway' ? '–' : b.partitionsLed) + '</td><td class="num">' + fmtNum(b.connections) + '</td>' +
        '<td class="num">' + fmtNum(b.inPerSec) + '</td><td class="num">' + fmtNum(b.outPerSec) + '</td>' +
        '<td>' + disk + '</td><td class="num">' + (b.disk ? fmtBytes(b.disk.dataBytes) : '–') + '</td><td class="url">' + esc(b.url || '–') + '</td></tr>';
    }));
    $('problems-section').hidden = c.problems.length === 0;
    $('problems').innerHTML = c.problems.map((p) => '<li>' + esc(p) + '</li>').join('');
    renderBackbone(c.backbone || []); // absent from an older broker's answer
    const moves = c.moves || []; // absent from an older broker's answer
    $('moves-section').hidden = moves.length === 0;
    rows('moves', moves.map((m) => {
      const pct = m.copiedBytes !== null && m.totalBytes ? Math.min(100, Math.floor((m.copiedBytes * 100) / m.totalBytes)) : null;
      const bar = pct === null ? '' : '<span class="bar"><span style="width:' + pct + '%"></span></span>';
      return '<tr data-move="' + esc(m.topic + '/' + m.partition) + '" data-phase="' + esc(m.phase) + '"><td>' + esc(m.topic) + '/' + m.partition + '</td>' +
        '<td>' + esc(m.from) + '</td><td>' + esc(m.to) + '</td><td>' + esc(m.phase) + '</td>' +
        '<td data-copied>' + bar + esc(fmtCopied(m)) + '</td><td class="num">' + (m.bytesPerSecond === null ? '–' : fmtBytes(m.bytesPerSecond) + '/s') + '</td>' +
        '<td class="num" data-left>' + esc(fmtLeft(m.timeLeftMs)) + '</td><td class="num">' + Math.max(0, Math.round((c.timeMs - m.startedAtMs) / 1000)) + ' s</td>' +
        '<td class="bad">' + esc(m.error || '') + '</td></tr>';
    }));
    rows('partitions', c.partitions.map((p) => {
      // Backbone mode (p.stream present, absent from an older broker's answer): RabbitMQ leads and replicates the stream, no gateway does.
      const backbone = p.stream !== undefined;
      const replicas = backbone ? '<span class="muted">RabbitMQ stream' + (p.stream ? ' ' + esc(p.stream) : '') + '</span>' : p.replicas.map((r) => {
        const s = p.replicaStates[r] || 'unknown';
        const lag = p.lag && p.lag[r] !== undefined && s !== 'leader' ? ' ' + p.lag[r] : '';
        return '<span class="badge ' + stateClass(s) + '" data-replica="' + esc(r) + '" data-replica-state="' + esc(s) + '">' + esc(r) + ' ' + esc(s) + lag + '</span>';
      }).join('');
      const messages = p.start === null || p.end === null ? '–' : p.end - p.start;
      return '<tr data-partition="' + esc(p.topic + '/' + p.partition) + '" data-status="' + esc(p.status) + '"><td>' + esc(p.topic) + '/' + p.partition + '</td>' +
        '<td data-leader>' + (backbone ? (p.leader === null ? '<span class="warn">unknown</span>' : esc(p.leader) + ' <span class="muted">RabbitMQ</span>') :
          p.leader === null ? '<span class="bad">none</span>' : esc(p.leader) + (p.status === 'unknown' ? '?' : '')) + '</td>' +
        '<td>' + replicas + '</td><td class="num">' + messages + '</td><td class="num">' + fmtNum(p.end) + '</td><td class="num">' + fmtBytes(p.sizeBytes) + '</td>' +
        '<td class="' + stateClass(p.status) + '">' + esc(p.status) + '</td></tr>';
    }));
    rows('topics', c.topics.map((t) => '<tr data-topic="' + esc(t.topic) + '"><td>' + esc(t.topic) + '</td><td class="num">' + t.partitions + '</td><td class="num">' + t.messages + '</td>' +
      '<td class="num">' + fmtBytes(t.sizeBytes) + '</td><td class="num">' + fmtBytes(t.replicaBytes) + '</td><td class="num">' + t.inPerSec + '</td><td class="num">' + t.outPerSec + '</td>' +
      '<td class="' + stateClass(t.status) + '">' + esc(t.status) + '</td></tr>'));
    $('topic-names').innerHTML = c.topics.map((t) => '<option value="' + esc(t.topic) + '">').join('');
    rows('consumers', c.consumers.map((k) => '<tr data-consumer="' + esc(k.kind + ':' + k.consumer + ':' + k.topic + '/' + k.partition) + '"><td>' + esc(k.consumer) + '</td><td>' + esc(k.kind) + '</td>' +
      '<td>' + esc(k.topic) + '/' + k.partition + '</td><td class="num">' + k.offset + '</td><td class="num">' + k.end + '</td><td class="num" data-lag>' + k.lag + '</td></tr>'));
    $('consumers-empty').hidden = c.consumers.length > 0;
    $('events').innerHTML = c.events.slice(0, 50).map((e) =>
      '<li class="' + (e.kind === 'alert' ? 'bad' : e.kind === 'member-state' && !e.message.endsWith(' joined') ? 'warn' : '') + '"><time>' + fmtTime(e.timeMs) + '</time>' +
      '<span class="muted">' + esc(e.broker) + '</span> ' + esc(e.message) + '</li>').join('');
  }

  /** Backbone mode: each gateway's connection and node checks, and the stream leaders they know (relaymq status prints the same). */
  function renderBackbone(views) {
    $('backbone-section').hidden = views.length === 0;
    rows('backbone', views.map((v) => {
      const nodes = v.nodes.map((n) => {
        const state = n.reachable === null ? 'unchecked' : n.reachable ? 'reachable' : 'unreachable';
        const detail = n.reachable ? ' ' + fmtMs(n.roundTripMs) + ' ms' : n.lastError ? ': ' + n.lastError : '';
        return '<span class="badge ' + (n.reachable === null ? 'warn' : n.reachable ? 'ok' : 'bad') + '" data-node="' + esc(n.node) + '" data-node-state="' + state + '">' + esc(n.node) + ' ' + state + esc(detail) + '</span>';
      }).join('');
      return '<tr data-gateway="' + esc(v.gateway) + '" data-connected="' + v.connected + '"><td>' + esc(v.gateway) + '</td>' +
        '<td class="' + (v.connected ? 'ok' : 'bad') + '">' + (v.connected ? 'connected' : 'unreachable') + '</td><td>' + esc(v.connectedTo || '–') +
          (v.connectedTo && v.advertisedAs && v.advertisedAs !== v.connectedTo ? ' <span class="muted">(advertised ' + esc(v.advertisedAs) + ')</span>' : '') + '</td>' +
        '<td class="num">' + v.connections + '</td><td class="num">' + (v.lastConfirmMs === null ? '–' : fmtMs(v.lastConfirmMs) + ' ms') + '</td><td>' + nodes + '</td></tr>';
    }));
    const leaders = {};
    for (const v of views) for (const p of v.partitions) {
      const key = p.topic + '/' + p.partition;
      if (!leaders[key] || (leaders[key].leader === null && p.leader !== null)) leaders[key] = p;
    }
    rows('stream-leaders', Object.keys(leaders).sort().map((key) => '<tr data-stream-partition="' + esc(key) + '"><td>' + esc(key) + '</td>' +
      '<td data-leader>' + (leaders[key].leader === null ? '<span class="warn">unknown</span>' : esc(leaders[key].leader)) + '</td><td class="muted">' + esc(leaders[key].stream) + '</td></tr>'));
  }

  /** Rounds a maximum up to 1, 2 or 5 times a power of ten, for readable axis labels. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  /**
   * A line chart with a time axis (x) and a value axis (y). series: [{ name, color, points: [[timeMs, value|null]] }].
   * A null value breaks the line (no data that second).
   */
  function chart(svg, legend, series, endMs, spanMs) {
    const W = 600, H = 190, L = 46, R = 8, T = 8, B = 22;
    const startMs = endMs - spanMs;
    const values = series.flatMap((s) => s.points.filter((p) => p[0] >= startMs && p[1] !== null).map((p) => p[1]));
    const max = niceMax(Math.max(0, ...values));
    const x = (t) => L + ((t - startMs) / spanMs) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    let out = '';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      out += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v).toFixed(1) + '" y2="' + y(v).toFixed(1) + '" stroke="#263140"/>' +
        '<text x="' + (L - 5) + '" y="' + (y(v) + 4).toFixed(1) + '" fill="#8a96a3" font-size="11" text-anchor="end">' + (Math.round(v * 100) / 100) + '</text>';
    }
    const tick = 30000;
    for (let t = Math.ceil(startMs / tick) * tick; t <= endMs; t += tick) {
      out += '<line x1="' + x(t).toFixed(1) + '" x2="' + x(t).toFixed(1) + '" y1="' + T + '" y2="' + (H - B) + '" stroke="#1c2633"/>' +
        '<text class="time-label" x="' + x(t).toFixed(1) + '" y="' + (H - 6) + '" fill="#8a96a3" font-size="11" text-anchor="middle">' + fmtTime(t) + '</text>';
    }
    for (const s of series) {
      let run = [];
      const flush = () => {
        if (run.length === 1) out += '<circle cx="' + run[0].split(',')[0] + '" cy="' + run[0].split(',')[1] + '" r="2" fill="' + s.color + '"/>';
        else if (run.length > 1) out += '<polyline data-series="' + esc(s.name) + '" fill="none" stroke-width="2" stroke="' + s.color + '" points="' + run.join(' ') + '"/>';
        run = [];
      };
      for (const [t, v] of s.points) {
        if (t < startMs) continue;
        if (v === null) { flush(); continue; }
        run.push(x(t).toFixed(1) + ',' + y(v).toFixed(1));
      }
      flush();
    }
    svg.innerHTML = out;
    legend.innerHTML = series.map((s) => '<span data-legend="' + esc(s.name) + '"><i style="background:' + s.color + '"></i>' + esc(s.name) + '</span>').join('');
  }

  function renderSeries(c) {
    const s = c.series;
    const span = 120 * s.intervalMs;
    const pts = s.cluster;
    const last = pts[pts.length - 1];
    const allLast = Object.values(s.brokers).map((b) => (b.length ? b[b.length - 1].timeMs : 0));
    const endMs = last ? last.timeMs : Math.max(Date.now(), ...allLast);
    // The headline is the chart's last point, labelled with its second.
    $('throughput-in').textContent = last ? last.inPerSec : '–';
    $('throughput-out').textContent = last ? last.outPerSec : '–';
    $('latency-p50').textContent = fmtMs(last ? last.p50Ms : null);
    $('latency-p99').textContent = fmtMs(last ? last.p99Ms : null);
    $('throughput-at').textContent = $('latency-at').textContent = last ? 'at ' + fmtTime(last.timeMs) : '';
    // The second as a number too, so a test can find the point the headline shows.
    for (const id of ['throughput-at', 'latency-at']) $(id).dataset.timeMs = last ? String(last.timeMs) : '';
    chart($('throughput-chart'), $('throughput-legend'), [
      { name: 'in (published)', color: PALETTE[0], points: pts.map((p) => [p.timeMs, p.inPerSec]) },
      { name: 'out (delivered)', color: PALETTE[1], points: pts.map((p) => [p.timeMs, p.outPerSec]) },
    ], endMs, span);
    chart($('latency-chart'), $('latency-legend'), [
      { name: 'p50', color: PALETTE[0], points: pts.map((p) => [p.timeMs, p.p50Ms]) },
      { name: 'p99', color: PALETTE[1], points: pts.map((p) => [p.timeMs, p.p99Ms]) },
    ], endMs, span);
    const perBroker = (field) => c.brokers.map((b) => ({
      name: b.id + (b.reachable ? '' : ' (' + b.state + ', no data)'),
      color: brokerColors[b.id],
      points: (s.brokers[b.id] || []).map((p) => [p.timeMs, p[field]]),
    }));
    chart($('broker-in-chart'), $('broker-in-legend'), perBroker('inPerSec'), endMs, span);
    chart($('broker-p99-chart'), $('broker-p99-legend'), perBroker('p99Ms'), endMs, span);
  }

  // ---- message browser
  const INTEGER = /^\\d{1,15}$/;
  const TOPIC = /^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$/;
  let browsed = [];
  $('browse-mode').addEventListener('change', () => { $('browse-from').disabled = $('browse-mode').value !== 'from'; });
  $('browse-format').addEventListener('change', () => renderMessages());

  function hex(b64) {
    const bin = atob(b64);
    const lines = [];
    for (let i = 0; i < bin.length; i += 16) {
      const chunk = bin.slice(i, i + 16);
      const bytes = Array.from(chunk, (ch) => ch.charCodeAt(0).toString(16).padStart(2, '0')).join(' ');
      const ascii = Array.from(chunk, (ch) => (ch.charCodeAt(0) >= 32 && ch.charCodeAt(0) < 127 ? ch : '.')).join('');
      lines.push(i.toString(16).padStart(6, '0') + '  ' + bytes.padEnd(48) + ' ' + ascii);
    }
    return lines.join('\\n');
  }

  function textOf(m) {
    if (m.text !== null) return m.text;
    if (m.json !== null && typeof m.json === 'string') return m.json;
    try { return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(atob(m.data), (ch) => ch.charCodeAt(0))); } catch { return '(not UTF-8 text: show as hex)'; }
  }

  function show(m, format) {
    if (format === 'hex') return hex(m.data);
    if (format === 'text') return textOf(m);
    if (m.json !== null) return JSON.stringify(m.json, null, 2);
    if (m.text !== null) { try { return JSON.stringify(JSON.parse(m.text), null, 2); } catch { return m.text; } }
    return '(binary data: show as hex)';
  }

  function renderMessages() {
    const format = $('browse-format').value;
    rows('messages', browsed.map((m) => '<tr data-offset="' + m.offset + '"><td class="num">' + m.offset + '</td><td>' + esc(new Date(m.timestamp).toISOString()) + '</td>' +
      '<td>' + (m.key === null ? '–' : esc(m.key)) + '</td><td>' + (m.headers === null ? '–' : esc(JSON.stringify(m.headers))) + '</td><td class="num">' + m.size + '</td>' +
      '<td><pre data-format="' + format + '">' + esc(show(m, format)) + '</pre></td></tr>'));
  }

  $('browse').addEventListener('submit', async (event) => {
    event.preventDefault();
    const topic = $('browse-topic').value.trim();
    const partition = $('browse-partition').value.trim();
    const count = $('browse-count').value.trim();
    const fromOffset = $('browse-from').value.trim();
    const mode = $('browse-mode').value;
    const error = $('browse-error');
    error.textContent = '';
    if (!TOPIC.test(topic) || topic.length > 255) { error.textContent = 'topic: dot-separated segments of letters, digits, _ and -'; return; }
    if (!INTEGER.test(partition)) { error.textContent = 'partition: a whole number from 0'; return; }
    if (!INTEGER.test(count) || Number(count) < 1 || Number(count) > 100) { error.textContent = 'N: a whole number from 1 to 100'; return; }
    if (mode === 'from' && !INTEGER.test(fromOffset)) { error.textContent = 'offset: a whole number from 0'; return; }
    const q = new URLSearchParams({ topic, partition, count });
    if (mode === 'from') q.set('from', fromOffset);
    try {
      const r = await api('api/messages?' + q.toString());
      const body = await r.json();
      if (r.status === 401) { error.textContent = tokenNeeded('the message browser (it shows message contents)'); browsed = []; renderMessages(); $('admin-token').focus(); return; }
      if (!r.ok) { error.textContent = body.error || ('HTTP ' + r.status); browsed = []; renderMessages(); return; }
      browsed = body.messages;
      if (browsed.length === 0) error.textContent = 'no messages there (partition holds offsets ' + body.start + ' to ' + (body.end - 1) + ')';
      renderMessages();
    } catch (err) {
      error.textContent = 'could not read messages: ' + err;
    }
  });

  let refreshTimer;
  async function refresh() {
    clearTimeout(refreshTimer);
    try {
      const r = await api('api/cluster');
      if (r.status === 401) {
        $('health').textContent = 'token needed';
        $('health').className = 'bad';
        $('auth').textContent = tokenNeeded('this broker\\'s console (--admin-protect-reads)');
        clearCluster();
        return;
      }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const cluster = await r.json();
      $('auth').textContent = '';
      renderCluster(cluster);
      renderSeries(cluster);
      $('updated').textContent = 'updated ' + fmtTime(cluster.timeMs);
    } catch (err) {
      $('health').textContent = 'unreachable';
      $('health').className = 'bad';
    } finally {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 1000);
    }
  }
  refresh();
})();
</script>
</body>
</html>
`;
