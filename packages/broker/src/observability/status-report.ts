import type { ClusterReport } from './operations.js';

/** Pads columns to their widest cell. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/**
 * `relaymq status` output: cluster health, brokers with state and role,
 * partitions with leader, replicas and lag, problems, recent events.
 */
export function renderStatus(report: ClusterReport, maxEvents = 10): string {
  const lines: string[] = [];
  lines.push(`cluster as seen by ${report.broker}: ${report.healthy ? 'HEALTHY' : 'UNHEALTHY'}${report.ready ? '' : ' (broker not ready)'}`);
  lines.push('');
  lines.push(
    ...table(
      ['BROKER', 'STATE', 'ROLE', 'LEADS', 'CONNECTIONS', 'URL'],
      report.brokers.map((b) => [`${b.id}${b.self ? '*' : ''}`, b.state, b.role, String(b.partitionsLed), b.load === undefined ? '-' : String(b.load.connections), b.url || '-']),
    ),
  );
  lines.push('');
  if (report.partitions.length === 0) {
    lines.push('no partitions');
  } else {
    lines.push(
      ...table(
        ['PARTITION', 'LEADER', 'REPLICAS', 'COMMIT', 'LAG', 'STATUS'],
        report.partitions.map((p) => [
          `${p.topic}/${p.partition}`,
          p.leader ?? 'NONE',
          p.replicas.join(','),
          String(p.commit),
          p.lag === null ? `(ask ${p.leader ?? 'the leader'})` : Object.entries(p.lag).map(([r, n]) => `${r}:${n}`).join(' '),
          p.leaderless ? 'LEADERLESS' : p.underReplicated ? 'UNDER-REPLICATED' : 'ok',
        ]),
      ),
    );
  }
  if (report.problems.length > 0) {
    lines.push('', 'problems:', ...report.problems.map((p) => `  - ${p}`));
  }
  const events = report.events.slice(0, maxEvents);
  if (events.length > 0) {
    lines.push('', 'recent events:', ...events.map((e) => `  ${new Date(e.timeMs).toISOString()}  ${e.message}`));
  }
  return `${lines.join('\n')}\n`;
}
