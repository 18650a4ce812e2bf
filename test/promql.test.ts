import { describe, expect, it } from 'vitest';
import { metricNames } from './support/promql.js';

describe('metricNames (PromQL metric names, for the rules and dashboard checks)', () => {
  it.each([
    ['relaymq_partitions', ['relaymq_partitions']],
    ['relaymq_leaderless_partitions > 0', ['relaymq_leaderless_partitions']],
    ['sum by (broker) (rate(relaymq_messages_in_total{broker=~"$broker"}[$__rate_interval]))', ['relaymq_messages_in_total']],
    ['histogram_quantile(0.99, sum by (le) (rate(relaymq_publish_latency_seconds_bucket[5m])))', ['relaymq_publish_latency_seconds_bucket']],
    ['sum(rate(relaymq_bytes_out_total[1m])) without (topic, instance)', ['relaymq_bytes_out_total']],
    ['1 - relaymq_disk_available_bytes / on (broker, path) relaymq_disk_size_bytes', ['relaymq_disk_available_bytes', 'relaymq_disk_size_bytes']],
    ['max(relaymq_gossip_members{state=~"dead|left"}) by (state) > 0 and on() up == 1', ['relaymq_gossip_members', 'up']],
    ['ALERTS{alertname=~"Relaymq.*", alertstate="firing"}', ['ALERTS']],
    ['increase(relaymq_leader_changes_total[1h] offset 5m) > bool 3', ['relaymq_leader_changes_total']],
    ['label_values(relaymq_partitions{job="relaymq"}, broker)', ['relaymq_partitions']],
    ['rate(relaymq_process_cpu_seconds_total[${__rate_interval}]) * 1e3', ['relaymq_process_cpu_seconds_total']],
    ['{__name__="relaymq_x"}', []],
  ])('%s', (expr, expected) => {
    expect(metricNames(expr)).toEqual(expected);
  });
});
