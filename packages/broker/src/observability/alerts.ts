import { statfs } from 'node:fs/promises';
import pRetry, { AbortError } from 'p-retry';
import type { LogFunction, ResolvedAlertOptions } from '../options.js';

/** The kinds of alert, stable names receivers can route on. */
export type AlertKind = 'broker-down' | 'partition-leaderless' | 'partition-under-replicated' | 'disk-full' | 'backbone-unreachable';

/** What alert evaluation looks at: one moment of the cluster as this broker sees it. */
export interface AlertSnapshot {
  nowMs: number;
  /** Members by gossip state. */
  brokers: ReadonlyArray<{ id: string; state: string }>;
  /** Partitions hosted here (`group` names them uniquely). */
  partitions: ReadonlyArray<{ group: string; leaderless: boolean; underReplicated: boolean }>;
  /** Use of the data directory's file system; absent without a data directory. */
  disk?: { path: string; usedPercent: number };
  /** Backbone mode: whether this gateway has a connection to the backbone, and the nodes' last errors. */
  backbone?: { gateway: string; connected: boolean; errors: string[] };
}

/** Thresholds of {@link evaluateAlerts}. */
export interface AlertThresholds {
  graceMs: number;
  diskFullPercent: number;
}

/** Conditions seen so far: when each began, and which alerts were sent. */
export interface AlertState {
  /** Condition key → when it was first seen, in ms. */
  readonly since: ReadonlyMap<string, number>;
  /** Keys of alerts fired and not yet resolved. */
  readonly firing: ReadonlySet<string>;
}

/** One webhook notification: the JSON body POSTed to every URL. */
export interface AlertNotification {
  /** `firing` when the condition starts to count, `resolved` when it cleared. */
  status: 'firing' | 'resolved';
  alert: AlertKind;
  /** Stable identity of the condition, e.g. `partition-leaderless:p/orders/0`: receivers dedupe on it. */
  key: string;
  /** What the alert is about: a broker id, a partition group, a directory. */
  subject: string;
  /** One sentence for humans. */
  message: string;
  /** When the condition began, in ms since the epoch. */
  sinceMs: number;
  /** When this notification was produced. */
  timeMs: number;
  /** The broker that noticed (each broker reports what it sees; receivers dedupe on `key`). */
  reporter: string;
}

export const EMPTY_ALERT_STATE: AlertState = { since: new Map(), firing: new Set() };

interface Condition {
  key: string;
  alert: AlertKind;
  subject: string;
  message: string;
  /** How long it must hold before it alerts. */
  forMs: number;
}

/** The conditions that hold in `snapshot`, each with the time it must last before alerting. */
function conditions(snapshot: AlertSnapshot, thresholds: AlertThresholds): Condition[] {
  const found: Condition[] = [];
  for (const b of snapshot.brokers) {
    // Gossip already waited out its suspicion timeout before calling a member dead: alert at once.
    // A broker that left (shut down) is down too: its replicas are missing either way.
    if (b.state === 'dead' || b.state === 'left') {
      found.push({ key: `broker-down:${b.id}`, alert: 'broker-down', subject: b.id, message: `broker ${b.id} is down (gossip: ${b.state})`, forMs: 0 });
    } else if (b.state === 'unseen') {
      // Peers start together: one not seen yet gets the grace time to join.
      found.push({ key: `broker-down:${b.id}`, alert: 'broker-down', subject: b.id, message: `broker ${b.id} has not joined the cluster`, forMs: thresholds.graceMs });
    }
  }
  for (const p of snapshot.partitions) {
    if (p.leaderless) {
      found.push({ key: `partition-leaderless:${p.group}`, alert: 'partition-leaderless', subject: p.group, message: `partition ${p.group} has no leader`, forMs: thresholds.graceMs });
    } else if (p.underReplicated) {
      found.push({
        key: `partition-under-replicated:${p.group}`,
        alert: 'partition-under-replicated',
        subject: p.group,
        message: `partition ${p.group} is under-replicated`,
        forMs: thresholds.graceMs,
      });
    }
  }
  const disk = snapshot.disk;
  if (disk !== undefined && disk.usedPercent >= thresholds.diskFullPercent) {
    found.push({
      key: `disk-full:${disk.path}`,
      alert: 'disk-full',
      subject: disk.path,
      message: `disk of ${disk.path} is ${disk.usedPercent.toFixed(1)}% full (threshold ${thresholds.diskFullPercent}%)`,
      forMs: 0,
    });
  }
  const backbone = snapshot.backbone;
  if (backbone !== undefined && !backbone.connected) {
    // A lost node is reconnected around within a second or two: only a gateway still cut off after the grace time alerts.
    found.push({
      key: `backbone-unreachable:${backbone.gateway}`,
      alert: 'backbone-unreachable',
      subject: backbone.gateway,
      message: `gateway ${backbone.gateway} cannot reach the backbone (RabbitMQ)${backbone.errors.length > 0 ? `: ${backbone.errors.join('; ')}` : ''}`,
      forMs: thresholds.graceMs,
    });
  }
  return found;
}

/**
 * Decides which alerts to send, from a snapshot and what was seen before:
 * a condition fires once it has held for its threshold, and resolves (one
 * more notification) when it no longer holds. Pure: time comes in the snapshot.
 */
export function evaluateAlerts(
  snapshot: AlertSnapshot,
  previous: AlertState,
  thresholds: AlertThresholds,
  reporter: string,
): { state: AlertState; notifications: AlertNotification[] } {
  const now = snapshot.nowMs;
  const since = new Map<string, number>();
  const firing = new Set<string>();
  const notifications: AlertNotification[] = [];
  const holding = conditions(snapshot, thresholds);
  const held = new Set(holding.map((c) => c.key));
  for (const c of holding) {
    const began = previous.since.get(c.key) ?? now;
    since.set(c.key, began);
    if (previous.firing.has(c.key)) {
      firing.add(c.key);
    } else if (now - began >= c.forMs) {
      firing.add(c.key);
      notifications.push({ status: 'firing', alert: c.alert, key: c.key, subject: c.subject, message: c.message, sinceMs: began, timeMs: now, reporter });
    }
  }
  for (const key of previous.firing) {
    if (held.has(key)) continue;
    const [alert, ...rest] = key.split(':');
    const subject = rest.join(':');
    notifications.push({
      status: 'resolved',
      alert: alert as AlertKind,
      key,
      subject,
      message: `${alert} ${subject} resolved`,
      sinceMs: previous.since.get(key) ?? now,
      timeMs: now,
      reporter,
    });
  }
  return { state: { since, firing }, notifications };
}

/** Percent of a file system in use, as `df` counts it (blocks not available to unprivileged users count as used). */
export async function diskUsedPercent(path: string): Promise<number> {
  const s = await statfs(path);
  if (s.blocks === 0) return 0;
  return ((s.blocks - s.bavail) / s.blocks) * 100;
}

/** Settings of {@link AlertRunner}. */
export interface AlertRunnerOptions {
  alerts: ResolvedAlertOptions;
  reporter: string;
  snapshot: () => Promise<AlertSnapshot>;
  /** Told of each notification as it is produced (the dashboard's recent events). */
  onNotification?: (notification: AlertNotification) => void;
  log: LogFunction;
}

/**
 * Evaluates alerts every `checkIntervalMs` and POSTs each notification to
 * every webhook, retrying with exponential backoff. Deliveries in flight are
 * abandoned on `stop()`.
 */
export class AlertRunner {
  private state: AlertState = EMPTY_ALERT_STATE;
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;
  private readonly abort = new AbortController();

  constructor(private readonly options: AlertRunnerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.alerts.checkIntervalMs);
    this.timer.unref();
  }

  /** Evaluates once now (the timer does this periodically); resolves once notifications are handed to delivery. */
  async check(): Promise<AlertNotification[]> {
    if (this.checking || this.abort.signal.aborted) return [];
    this.checking = true;
    try {
      const snapshot = await this.options.snapshot();
      const { alerts, reporter } = this.options;
      const { state, notifications } = evaluateAlerts(snapshot, this.state, alerts, reporter);
      this.state = state;
      for (const notification of notifications) {
        this.options.log(notification.status === 'firing' ? 'warn' : 'info', `alert ${notification.status}: ${notification.message}`, { alert: notification.key });
        this.options.onNotification?.(notification);
        for (const url of alerts.webhooks) void this.deliver(url, notification);
      }
      return notifications;
    } catch (err) {
      this.options.log('error', 'alert check failed', { error: String(err) });
      return [];
    } finally {
      this.checking = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.abort.abort();
  }

  private async deliver(url: string, notification: AlertNotification): Promise<void> {
    const { retries, retryDelayMs, timeoutMs } = this.options.alerts;
    const body = JSON.stringify(notification);
    try {
      await pRetry(
        async () => {
          if (this.abort.signal.aborted) throw new AbortError('alert runner stopped');
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(timeoutMs)]),
          });
          await response.body?.cancel();
          if (!response.ok) throw new Error(`webhook answered ${response.status}`);
        },
        {
          retries,
          minTimeout: retryDelayMs,
          factor: 2,
          randomize: false,
          signal: this.abort.signal,
          onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
            this.options.log('warn', 'alert delivery failed', { url: redactUrl(url), attempt: attemptNumber, retriesLeft, error: error.message });
          },
        },
      );
    } catch (err) {
      if (!this.abort.signal.aborted) this.options.log('error', 'alert delivery gave up', { url: redactUrl(url), alert: notification.key, error: String(err) });
    }
  }
}

/** A URL without its credentials or query (which may hold tokens), for logs and `--print-config`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username !== '' || u.password !== '') {
      u.username = 'REDACTED';
      u.password = '';
    }
    if (u.search !== '') u.search = '?REDACTED';
    return u.toString();
  } catch {
    return 'REDACTED';
  }
}
