// The request/reply envelope every API uses (the controller's api.<verb>, each agent's
// agent.<node>.<verb>): JSON request bodies checked by the verb's contract, replies
// `{ ok }` or `{ error, code }` with a stable code the CLI maps to its exit status.
// Pure: the NATS side is shared/nats/rpc.ts.
import { ValidationError, type Check } from './validate.js';

export type RpcCode = 'invalid' | 'not_found' | 'conflict' | 'timeout' | 'unavailable' | 'internal';
const CODES: readonly RpcCode[] = ['invalid', 'not_found', 'conflict', 'timeout', 'unavailable', 'internal'];

/** An error to send to the caller; its message is one line meant for a person. */
export class RpcError extends Error {
  constructor(readonly code: RpcCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RpcError';
  }
}

export const invalid = (m: string) => new RpcError('invalid', m);
export const notFound = (m: string) => new RpcError('not_found', m);
export const conflict = (m: string) => new RpcError('conflict', m);
export const timedOut = (m: string) => new RpcError('timeout', m);

export type Reply<T> = { ok: T } | { error: string; code: RpcCode };

/** One verb's contract: its name, how a request body is checked, what it replies. */
export interface Verb<Req, Rep> {
  readonly name: string;
  /** Reads a request: the view, the log and nothing else changes (no queueing needed). */
  readonly readOnly: boolean;
  readonly check: Check<Req>;
  /** Type-only: the reply. */
  readonly reply?: Rep;
}

export function verb<Req, Rep>(name: string, check: Check<Req>, o: { readOnly?: boolean } = {}): Verb<Req, Rep> {
  return { name, check, readOnly: o.readOnly === true };
}

export type RequestOf<V> = V extends Verb<infer Q, unknown> ? Q : never;
export type ReplyOf<V> = V extends Verb<unknown, infer P> ? P : never;

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeBody(v: unknown): Uint8Array {
  return enc.encode(JSON.stringify(v));
}

/** Bytes of a request → the verb's checked request, or RpcError('invalid'). */
export function decodeRequest<Req>(v: Verb<Req, unknown>, bytes: Uint8Array): Req {
  let raw: unknown = {};
  if (bytes.length > 0) {
    try { raw = JSON.parse(dec.decode(bytes)); } catch { throw invalid('request is not JSON'); }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('request is not a JSON object');
  try {
    return v.check(raw, '');
  } catch (err) {
    if (err instanceof ValidationError) throw invalid(`invalid request: ${err.message}`);
    throw err;
  }
}

/** What a handler's outcome becomes on the wire. Anything not an RpcError is 'internal'. */
export function replyOf<T>(r: { ok: T } | { err: unknown }): Reply<T> {
  if ('ok' in r) return { ok: r.ok };
  const e = r.err;
  if (e instanceof RpcError) return { error: e.message, code: e.code };
  if (e instanceof ValidationError) return { error: `invalid request: ${e.message}`, code: 'invalid' };
  return { error: `internal error: ${(e as Error)?.message ?? String(e)}`, code: 'internal' };
}

/** Bytes of a reply → the result, or RpcError with the code the server sent. */
export function decodeReply<T>(bytes: Uint8Array): T {
  let r: unknown;
  try { r = JSON.parse(dec.decode(bytes)); } catch { throw new RpcError('internal', 'the reply is not JSON'); }
  if (typeof r !== 'object' || r === null) throw new RpcError('internal', 'the reply is not an object');
  const o = r as { ok?: T; error?: unknown; code?: unknown };
  if (o.error !== undefined) {
    const code = CODES.includes(o.code as RpcCode) ? (o.code as RpcCode) : 'internal';
    throw new RpcError(code, String(o.error));
  }
  return (o.ok ?? true) as T;
}
