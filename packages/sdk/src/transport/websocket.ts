/**
 * The part of the WHATWG WebSocket the SDK uses. Both the browser's global
 * `WebSocket` and the `ws` package's class satisfy it, so the core never
 * imports either.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  /** Bytes queued but not yet sent. */
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket constructor: `new WebSocket(url)`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `readyState` of an open socket. */
export const OPEN = 1;
