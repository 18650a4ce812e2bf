/** Scheduling at the end of the current tick, shared by the peer transport and client delivery. */

const RESOLVED = Promise.resolve();

/**
 * Runs `fn` once the current tick is over: after the code running now and
 * every promise callback it queued (a Raft group answers a peer from one),
 * but before the event loop goes on to other I/O. So a lone message (a
 * leader's append, a follower's answer to it) leaves in the turn it was
 * made instead of waiting for every other I/O callback of the turn (a
 * setImmediate did: 10–130 µs on the awaited publish's path, measured);
 * everything sent in one tick still goes together. A promise job rather
 * than queueMicrotask, which Node wraps in an AsyncResource.
 */
export function atEndOfTick(fn: () => void): void {
  void RESOLVED.then(() => process.nextTick(fn));
}
