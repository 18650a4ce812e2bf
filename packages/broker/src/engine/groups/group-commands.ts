import { RelayError } from '@relaymq/sdk/protocol';
import { parseGroupCommand, type GroupCommand } from '../../core/metadata/groups.js';

/** Peer RPC method by which a broker hands a consumer-group command to the metadata leader (the coordinator). */
export const GROUP_COMMAND_METHOD = 'meta.group';

/** Reads a forwarded group command; throws `INVALID_ARGUMENT` when it is not one. */
export function parseForwardedGroupCommand(body: unknown): GroupCommand {
  const command = parseGroupCommand(body);
  if (command === undefined) throw new RelayError('INVALID_ARGUMENT', 'malformed consumer-group command');
  return command;
}

/** The metadata leader's applied index its answer names (`applied`); undefined from a leader before that field, or malformed. */
export function appliedIndexOf(answer: unknown): number | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined;
  const applied = (answer as Record<string, unknown>).applied;
  return typeof applied === 'number' && Number.isSafeInteger(applied) && applied >= 0 ? applied : undefined;
}
