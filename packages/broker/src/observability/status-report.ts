import { GATEWAY_ROLE, renderBackbone } from './backbone-health.js';
import type { ClusterReport } from './cluster-view.js';

/** Pads columns to their widest cell. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Bytes as people read them (1024-based). */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A move's copy as `cluster moves`, `status` and the dashboard show it: `12.3 MiB of 40.0 MiB` (`-` when unknown). */
export function formatCopied(copied: number | null | undefined, total: number | null | undefined): string {
  if (copied === null || copied === undefined || total === null || total === undefined) return '-';
  return `${formatBytes(copied)} of ${formatBytes(total)}`;
}

/** Time left as people read it: `~8 s`, `~3 min`, `~2 h` (`-` when unknown, `0 s` when done). */
export function formatTimeLeft(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms <= 0) return '0 s';
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `~${s} s`;
  if (s < 7200) return `~${Math.round(s / 60)} min`;
  return `~${Math.round(s / 3600)} h`;
}

const num = (v: number | null): string => (v === null ? '-' : String(v));

/** A partition's leader: a broker (`?` when it did not answer), or in backbone mode the stream's RabbitMQ node. */
function partitionLeader(p: ClusterReport['partitions'][number]): string {
  if (p.stream !== undefined) return p.leader === null ? 'unknown' : `${p.leader} (RabbitMQ)`;
  return p.leader === null ? 'NONE' : p.status === 'unknown' ? `${p.leader}?` : p.leader;
}

/**
 * `relaymq status` output: the cluster view of `/api/cluster` — health,
 * brokers (state, role, rates, disk), partitions with their leader's lag
 * per replica, topics with size on disk and rates, consumer lag, problems,
 * the backbone as each gateway sees it (backbone mode), recent events.
 */
export function renderStatus(report: ClusterReport, maxEvents = 10): string {
  const lines: string[] = [];
  lines.push(`cluster as seen by ${report.broker}: ${report.healthy ? 'HEALTHY' : 'UNHEALTHY'}${report.ready ? '' : ' (broker not ready)'}`);
  const asked = report.reached.length + report.unreachable.length;
  lines.push(`gathered from ${report.reached.length} of ${asked} brokers${report.unreachable.length > 0 ? ` (no answer: ${report.unreachable.join(', ')})` : ''}`);
  lines.push('');
  lines.push(
    ...table(
      ['BROKER', 'STATE', 'ROLE', 'LEADS', 'CONNECTIONS', 'IN/S', 'OUT/S', 'DISK USED', 'DATA', 'URL'],
      report.brokers.map((b) => [
        `${b.id}${b.self ? '*' : ''}`,
        b.state,
        b.role,
        b.role === GATEWAY_ROLE ? '-' : String(b.partitionsLed),
        num(b.connections),
        num(b.inPerSec),
        num(b.outPerSec),
        b.disk === null ? '-' : `${b.disk.usedPercent}% of ${formatBytes(b.disk.sizeBytes)}`,
        b.disk === null ? '-' : formatBytes(b.disk.dataBytes),
        b.url || '-',
      ]),
    ),
  );
  lines.push('');
  if (report.partitions.length === 0) {
    lines.push('no partitions');
  } else {
    lines.push(
      ...table(
        ['PARTITION', 'LEADER', 'REPLICAS (state:lag)', 'END', 'SIZE', 'STATUS'],
        report.partitions.map((p) => [
          `${p.topic}/${p.partition}`,
          partitionLeader(p),
          p.stream !== undefined
            ? `RabbitMQ stream${p.stream === null ? '' : ` ${p.stream}`}`
            : p.replicas.map((r) => `${r}:${p.replicaStates[r] === 'leader' ? 'leader' : `${p.replicaStates[r] ?? 'unknown'}${p.lag?.[r] === undefined ? '' : `:${p.lag[r]}`}`}`).join(' '),
          num(p.end),
          formatBytes(p.sizeBytes),
          p.status === 'ok' ? 'ok' : p.status.toUpperCase(),
        ]),
      ),
    );
    lines.push('');
    lines.push(
      ...table(
        ['TOPIC', 'PARTITIONS', 'MESSAGES', 'SIZE', 'ALL REPLICAS', 'IN/S', 'OUT/S'],
        report.topics.map((t) => [t.topic, String(t.partitions), String(t.messages), formatBytes(t.sizeBytes), formatBytes(t.replicaBytes), String(t.inPerSec), String(t.outPerSec)]),
      ),
    );
  }
  if (report.consumers.length > 0) {
    lines.push('');
    lines.push(
      ...table(
        ['CONSUMER', 'KIND', 'PARTITION', 'POSITION', 'END', 'LAG'],
        report.consumers.map((c) => [c.consumer, c.kind, `${c.topic}/${c.partition}`, String(c.offset), String(c.end), String(c.lag)]),
      ),
    );
  }
  // Absent from an older broker's answer.
  const moves = report.moves ?? [];
  if (moves.length > 0) {
    lines.push('', `${moves.length} replica move${moves.length === 1 ? '' : 's'} in progress:`);
    lines.push(
      ...table(
        ['PARTITION', 'FROM', 'TO', 'PHASE', 'COPIED', 'LEFT', 'FOR', 'LAST ERROR'],
        moves.map((m) => [
          `${m.topic}/${m.partition}`,
          m.from,
          m.to,
          m.phase,
          formatCopied(m.copiedBytes, m.totalBytes),
          formatTimeLeft(m.timeLeftMs),
          `${Math.max(0, Math.round((report.timeMs - m.startedAtMs) / 1000))} s`,
          m.error ?? '',
        ]),
      ),
    );
  }
  // Absent from an older broker's answer.
  lines.push(...renderBackbone(report.backbone ?? [], table));
  if (report.problems.length > 0) {
    lines.push('', 'problems:', ...report.problems.map((p) => `  - ${p}`));
  }
  const events = report.events.slice(0, maxEvents);
  if (events.length > 0) {
    lines.push('', 'recent events:', ...events.map((e) => `  ${new Date(e.timeMs).toISOString()}  ${e.broker}  ${e.message}`));
  }
  return `${lines.join('\n')}\n`;
}
