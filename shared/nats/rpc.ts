// The NATS side of shared/rpc.ts: serve a table of verbs on a subject prefix, call one.
// A handler's failure is always a reply, never an unhandled rejection.
import type { Msg, NatsConnection, Subscription } from 'nats';
import { decodeReply, decodeRequest, encodeBody, replyOf, RpcError, type Verb } from '../rpc.js';

export type Handler<Req, Rep> = (req: Req, msg: Msg) => Promise<Rep> | Rep;

/** Binds a verb to its handler; the pair is one entry of a served table. */
export interface Bound { verb: Verb<unknown, unknown>; handle: Handler<unknown, unknown> }
export const bind = <Req, Rep>(v: Verb<Req, Rep>, handle: Handler<Req, Rep>): Bound =>
  ({ verb: v as Verb<unknown, unknown>, handle: handle as Handler<unknown, unknown> });

export interface ServeOptions {
  queue?: string;
  /** Runs every verb that is not read-only through it (the controller serialises mutations). */
  serialise?: <T>(f: () => Promise<T>) => Promise<T>;
  /**
   * Subjects are `<prefix>.<caller>.<verb>`: the caller is the token after the prefix, which
   * the server lets only that identity publish on (shared/nats/trust.ts). It replaces any
   * `user` the request's body names: who asked comes from the connection, never the body.
   */
  identified?: boolean;
}

/**
 * Serves `<prefix>.<verb>` for each bound verb. Unknown verbs (including Object.prototype
 * names: the table is a Map) get an 'invalid' reply.
 */
export function serve(nc: NatsConnection, prefix: string, table: Bound[], o: ServeOptions = {}): Subscription {
  const d = dispatcher(table, o);
  return nc.subscribe(o.identified ? `${prefix}.*.>` : `${prefix}.>`, {
    ...(o.queue ? { queue: o.queue } : {}),
    callback: (_err, m) => {
      const rest = m.subject.slice(prefix.length + 1);
      if (!o.identified) { void answer(m, rest, d); return; }
      const dot = rest.indexOf('.');
      void answer(m, rest.slice(dot + 1), d, rest.slice(0, dot));
    },
  });
}

/** verb name + request bytes → reply bytes; never throws. The part of serve() without NATS. */
export type Dispatch = (name: string, data: Uint8Array, msg?: Msg, caller?: string) => Promise<Uint8Array>;

export function dispatcher(table: Bound[], o: ServeOptions = {}): Dispatch {
  const byName = new Map(table.map((b) => [b.verb.name, b]));
  return async (name, data, msg, caller) => {
    try {
      const b = byName.get(name);
      if (!b) throw new RpcError('invalid', `unknown request "${name.slice(0, 64)}"`);
      const req = decodeRequest(b.verb, data);
      if (caller !== undefined && req !== null && typeof req === 'object') (req as { user?: string }).user = caller;
      const run = async () => b.handle(req, msg as Msg);
      const ok = b.verb.readOnly || !o.serialise ? await run() : await o.serialise(run);
      return encodeBody(replyOf({ ok: ok ?? true }));
    } catch (err) {
      return encodeBody(replyOf({ err }));
    }
  };
}

async function answer(m: Msg, name: string, d: Dispatch, caller?: string): Promise<void> {
  const out = await d(name, m.data, m, caller);
  if (!m.reply) return;
  try { m.respond(out); } catch (err) {
    // a reply over the server's payload limit: say so instead of leaving the caller waiting
    try { m.respond(encodeBody(replyOf({ err: new RpcError('internal', `reply too large: ${(err as Error).message}`) }))); } catch { /* connection gone */ }
  }
}

/** Transport failures: no responder, timeout, connection lost. */
export class TransportError extends Error {
  constructor(readonly subject: string, readonly reason: 'no-responders' | 'timeout' | 'denied' | 'other', message: string) {
    super(message);
    this.name = 'TransportError';
  }
}

/** Calls `<prefix>.<verb>`; resolves with the reply or throws RpcError / TransportError. */
export async function call<Req, Rep>(nc: NatsConnection, prefix: string, v: Verb<Req, Rep>, req: Req, timeout = 15000): Promise<Rep> {
  const subject = `${prefix}.${v.name}`;
  let m: Msg;
  try {
    m = await nc.request(subject, encodeBody(req), { timeout });
  } catch (err) {
    const e = err as { code?: string; message: string };
    const reason = e.code === '503' ? 'no-responders' : e.code === 'TIMEOUT' ? 'timeout' : e.code === 'PERMISSIONS_VIOLATION' ? 'denied' : 'other';
    throw new TransportError(subject, reason, e.message);
  }
  return decodeReply<Rep>(m.data);
}
