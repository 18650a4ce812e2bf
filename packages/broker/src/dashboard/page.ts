/**
 * The cluster dashboard: one static page, inline CSS and JS, no build step and
 * nothing fetched from elsewhere (brokers often run without internet). It
 * polls `/api/cluster` and `/api/series` on the admin port that served it.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>relaymq dashboard</title>
<style>
  :root { --bg:#0f1419; --panel:#182029; --text:#e6e6e6; --muted:#8a96a3; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --a:#58a6ff; --b:#bc8cff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:center; gap:16px; padding:12px 20px; background:var(--panel); border-bottom:1px solid #263140; }
  header h1 { font-size:18px; margin:0; }
  #health { padding:2px 10px; border-radius:10px; font-weight:600; }
  .ok { color:var(--ok); } .warn { color:var(--warn); } .bad { color:var(--bad); }
  #health.ok { background:#12361d; } #health.bad { background:#4a1614; }
  main { display:grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap:16px; padding:16px 20px; }
  section { background:var(--panel); border-radius:8px; padding:12px 16px; }
  section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:0 0 8px; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid #263140; font-variant-numeric:tabular-nums; }
  th { color:var(--muted); font-weight:500; }
  .big { font-size:26px; font-weight:600; font-variant-numeric:tabular-nums; }
  .legend span { margin-right:12px; }
  svg { width:100%; height:140px; display:block; }
  #events { list-style:none; margin:0; padding:0; max-height:260px; overflow:auto; }
  #events li { padding:3px 0; border-bottom:1px solid #263140; }
  #events time { color:var(--muted); margin-right:8px; font-variant-numeric:tabular-nums; }
  #problems { margin:0; padding-left:18px; color:var(--bad); }
  footer { color:var(--muted); padding:0 20px 16px; }
</style>
</head>
<body>
<header>
  <h1>relaymq</h1>
  <span id="health" data-testid="health">loading…</span>
  <span id="reporter" class="muted"></span>
</header>
<main>
  <section>
    <h2>Brokers</h2>
    <table id="brokers" data-testid="brokers"><thead><tr><th>broker</th><th>health</th><th>role</th><th>leads</th><th>connections</th><th>url</th></tr></thead><tbody></tbody></table>
    <ul id="problems" data-testid="problems"></ul>
  </section>
  <section>
    <h2>Partitions</h2>
    <table id="partitions" data-testid="partitions"><thead><tr><th>partition</th><th>leader</th><th>replicas</th><th>commit</th><th>lag</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Throughput (messages/s, this broker)</h2>
    <div class="legend"><span style="color:var(--a)">in <b id="throughput-in" data-testid="throughput-in">0</b></span><span style="color:var(--b)">out <b id="throughput-out" data-testid="throughput-out">0</b></span></div>
    <svg id="throughput-chart" viewBox="0 0 400 140" preserveAspectRatio="none" aria-label="throughput chart"></svg>
  </section>
  <section>
    <h2>Publish latency (ms, this broker)</h2>
    <div class="legend"><span style="color:var(--a)">p50 <b id="latency-p50" data-testid="latency-p50">–</b></span><span style="color:var(--b)">p99 <b id="latency-p99" data-testid="latency-p99">–</b></span></div>
    <svg id="latency-chart" viewBox="0 0 400 140" preserveAspectRatio="none" aria-label="latency chart"></svg>
  </section>
  <section style="grid-column: 1 / -1">
    <h2>Recent events</h2>
    <ul id="events" data-testid="events"></ul>
  </section>
</main>
<footer>Refreshes every second. <span id="updated"></span></footer>
<script>
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const stateClass = (s) => (s === 'alive' ? 'ok' : s === 'suspect' ? 'warn' : 'bad');
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString();

  function rows(table, html) { $(table).querySelector('tbody').innerHTML = html.join(''); }

  function renderCluster(c) {
    const health = $('health');
    health.textContent = c.healthy ? 'healthy' : 'unhealthy';
    health.className = c.healthy ? 'ok' : 'bad';
    $('reporter').textContent = 'as seen by ' + c.broker;
    rows('brokers', c.brokers.map((b) =>
      '<tr data-broker="' + esc(b.id) + '"><td>' + esc(b.id) + (b.self ? ' ●' : '') + '</td>' +
      '<td class="' + stateClass(b.state) + '">' + esc(b.state) + '</td>' +
      '<td data-role="' + esc(b.role) + '">' + esc(b.role) + '</td>' +
      '<td>' + b.partitionsLed + '</td><td>' + (b.load ? b.load.connections : '–') + '</td><td>' + esc(b.url) + '</td></tr>'));
    $('problems').innerHTML = c.problems.map((p) => '<li>' + esc(p) + '</li>').join('');
    rows('partitions', c.partitions.map((p) => {
      const lag = p.lag === null ? '–' : Object.entries(p.lag).map(([r, n]) => esc(r) + ':' + n).join(' ');
      const cls = p.leaderless ? 'bad' : p.underReplicated ? 'warn' : '';
      return '<tr class="' + cls + '" data-partition="' + esc(p.topic + '/' + p.partition) + '"><td>' + esc(p.topic) + '/' + p.partition + '</td>' +
        '<td data-leader>' + (p.leader === null ? '<span class="bad">none</span>' : esc(p.leader)) + '</td>' +
        '<td>' + p.replicas.map(esc).join(', ') + '</td><td>' + p.commit + '</td><td>' + lag + '</td></tr>';
    }));
    $('events').innerHTML = c.events.slice(0, 50).map((e) =>
      '<li class="' + (e.kind === 'alert' ? 'bad' : e.kind === 'member-state' && !e.message.endsWith(' joined') ? 'warn' : '') + '"><time>' + fmtTime(e.timeMs) + '</time>' + esc(e.message) + '</li>').join('');
  }

  function chart(svg, series, colors) {
    const w = 400, h = 140, pad = 4;
    const n = Math.max(2, ...series.map((s) => s.length));
    const max = Math.max(1, ...series.flat().filter((v) => v !== null));
    const paths = series.map((s, i) => {
      const pts = s.map((v, j) => v === null ? null : (pad + (j * (w - 2 * pad)) / (n - 1)).toFixed(1) + ',' + (h - pad - (v / max) * (h - 2 * pad)).toFixed(1)).filter((p) => p !== null);
      if (pts.length === 1) pts.push((w - pad) + ',' + pts[0].split(',')[1]); // one sample: a flat line, not nothing
      return pts.length === 0 ? '' : '<polyline fill="none" stroke-width="2" stroke="' + colors[i] + '" points="' + pts.join(' ') + '"/>';
    });
    svg.innerHTML = '<line x1="0" y1="' + (h - pad) + '" x2="' + w + '" y2="' + (h - pad) + '" stroke="#263140"/>' +
      '<text x="4" y="14" fill="#8a96a3" font-size="11">max ' + (Math.round(max * 100) / 100) + '</text>' + paths.join('');
  }

  function renderSeries(s) {
    const pts = s.points;
    const last = pts[pts.length - 1];
    if (last) {
      $('throughput-in').textContent = last.inPerSec;
      $('throughput-out').textContent = last.outPerSec;
      $('latency-p50').textContent = last.p50Ms === null ? '–' : last.p50Ms;
      $('latency-p99').textContent = last.p99Ms === null ? '–' : last.p99Ms;
    }
    chart($('throughput-chart'), [pts.map((p) => p.inPerSec), pts.map((p) => p.outPerSec)], ['#58a6ff', '#bc8cff']);
    chart($('latency-chart'), [pts.map((p) => p.p50Ms), pts.map((p) => p.p99Ms)], ['#58a6ff', '#bc8cff']);
  }

  async function refresh() {
    try {
      const [cluster, series] = await Promise.all([fetch('api/cluster').then((r) => r.json()), fetch('api/series').then((r) => r.json())]);
      renderCluster(cluster);
      renderSeries(series);
      $('updated').textContent = 'Last update ' + new Date().toLocaleTimeString() + '.';
    } catch (err) {
      $('health').textContent = 'unreachable';
      $('health').className = 'bad';
    } finally {
      setTimeout(refresh, 1000);
    }
  }
  refresh();
})();
</script>
</body>
</html>
`;
