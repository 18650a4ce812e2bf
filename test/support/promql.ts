/**
 * Metric names a PromQL expression reads, for checking shipped rules and
 * dashboards against what the brokers export. Deliberately small rather
 * than a full parser: it drops what cannot hold a metric name (strings,
 * label matchers, ranges, grouping label lists, Grafana variables), then
 * keeps the identifiers that are neither function calls nor keywords.
 */

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan', 'atan2']);

/** Clauses whose parenthesised list holds label names, not expressions. */
const LABEL_LISTS = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi;

export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\blabel_values\s*\(([^,]*),\s*\w+\s*\)/g, ' $1 ') // Grafana's variable query: its second argument is a label
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(LABEL_LISTS, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ') // Grafana variables ($broker, ${__rate_interval})
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?\b/gi, ' '); // numbers and durations (offset 5m)
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const name = match[0];
    const rest = stripped.slice((match.index ?? 0) + name.length);
    if (/^\s*\(/.test(rest)) continue; // a function or aggregation call
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names].sort();
}

/**
 * Metrics only backbone gateways export (`relaymq_backbone_*`): the embedded
 * cluster's check leaves them to test/backbone-console.test.ts, which checks
 * them against a live gateway.
 */
export const GATEWAY_ONLY_METRIC = /^relaymq_backbone_/;

