import { RelayError } from '@relaymq/sdk/protocol';
import { PeerRpc } from '../net/peer-rpc.js';
import type { PeerTransport } from '../net/peer-transport.js';
import { parseBrokerReport, type BrokerReport } from './broker-report.js';
import type { PeerAnswer } from './cluster-view.js';

/** Transport channel of the console's requests: its own, so its request ids never meet the engine's RPC. */
export const CONSOLE_CHANNEL = 'console';
/** Peer method: the receiver's own {@link BrokerReport}. */
export const REPORT_METHOD = 'console.report';
/**
 * How long the console waits for a peer's report. A dead peer's link is
 * down and fails at once; this bounds a live but stalled one (a paused
 * process), which the view then shows as unreachable.
 */
export const REPORT_TIMEOUT_MS = 1500;

/**
 * Brokers' reports over the peer links. The console asks over the peer
 * links rather than the other brokers' admin ports because every clustered
 * broker has them (an admin port is optional and often bound to localhost),
 * they already carry peer TLS and authentication, and their ids are the
 * members' ids: no admin address to configure or discover, and a broker
 * whose peer link is down is exactly one the cluster cannot use.
 */
export class PeerReports {
  private readonly rpc: PeerRpc;

  constructor(
    transport: PeerTransport,
    private readonly self: () => Promise<BrokerReport>,
    private readonly timeoutMs = REPORT_TIMEOUT_MS,
  ) {
    this.rpc = new PeerRpc(transport, CONSOLE_CHANNEL);
    this.rpc.handle(REPORT_METHOD, async () => this.self());
  }

  /** Every peer's report or why there is none, asked in parallel. */
  async gather(peers: readonly string[]): Promise<Map<string, PeerAnswer>> {
    const answers = await Promise.all(
      peers.map(async (peer): Promise<[string, PeerAnswer]> => {
        try {
          const report = parseBrokerReport(await this.rpc.call(peer, REPORT_METHOD, null, this.timeoutMs));
          if (report.broker !== peer) throw new RelayError('PROTOCOL_ERROR', `broker ${peer} answered as ${report.broker}`);
          return [peer, { report }];
        } catch (err) {
          return [peer, { error: err instanceof RelayError ? `${err.code}: ${err.message}` : String(err) }];
        }
      }),
    );
    return new Map(answers);
  }

  close(): void {
    this.rpc.close();
  }
}
