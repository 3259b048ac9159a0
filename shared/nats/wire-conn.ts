// The thin I/O around shared/nats/wire.ts: one connection to a NATS server as an identity
// (TCP, then TLS as the server's INFO asks, with the cluster's CA; the nkey answer to the
// server's nonce), enough for a bulk reader: subscribe to an inbox, publish pull requests,
// answer the server's PINGs. Messages reach the subscriber as positions in the received bytes
// (WireParser), never as objects. It does not reconnect: a reader that loses it fails with one
// line (the caller may open another).
//
//   const w = await WireConn.open(creds, url); const sid = w.subscribe(inbox, onMsg); w.publish(subj, json, inbox)
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { sign as edSign } from 'node:crypto';
import { WireError, WireParser, MAX_PAYLOAD_CAP, connectFrame, pubFrame, subFrame, unsubFrame, type WireHandler } from './wire.js';
import { nkeyPrivate, type Creds } from './trust.js';

export type MsgHandler = WireHandler['msg'];

export interface WireOptions {
  /** connection name shown by the server */
  name?: string;
  /** the whole handshake (TCP, INFO, TLS, CONNECT's PONG) within this (default 5000) */
  timeoutMs?: number;
}

/** How much a TLS socket gathers before it stops reading (node's default: 16 KB). */
const GATHER_MAX = 256 * 1024;

interface Info { tls_required?: boolean; tls_available?: boolean; nonce?: string; max_payload?: number; headers?: boolean }

export class WireConn {
  private subs = new Map<number, MsgHandler>();
  private nextSid = 1;
  private closed = false;
  private closeHandlers: ((err: Error | undefined) => void)[] = [];
  /** parses what the socket holds unread (gathered for the next turn) */
  private drainNow: () => void = () => undefined;
  /** why the connection ended (undefined while open, or after close()) */
  failure: Error | undefined;

  private constructor(private sock: Socket, private parser: WireParser) {}

  /**
   * Connects as `creds` (null: anonymous, plain unless the server requires TLS) to the first of
   * `url`'s servers that answers ("nats://host:port", "tls://…", several comma-separated).
   * Throws one line (the last server's reason).
   */
  static async open(creds: Creds | null, url: string, o: WireOptions = {}): Promise<WireConn> {
    const servers = url.split(',').map((u) => u.trim()).filter(Boolean);
    if (servers.length === 0) throw new WireError('no NATS server address');
    let last: Error | undefined;
    for (const s of servers) {
      try { return await WireConn.openOne(creds, s, o); } catch (err) { last = err as Error; }
    }
    throw last!;
  }

  private static async openOne(creds: Creds | null, first: string, o: WireOptions): Promise<WireConn> {
    const m = /^(?:(nats|tls):\/\/)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(first);
    if (!m) throw new WireError(`not a NATS server address: ${JSON.stringify(first.slice(0, 80))}`);
    const host = m[2]!.replace(/^\[|\]$/g, ''), port = Number(m[3]);
    const ca = creds ? readFileSync(creds.ca) : undefined;
    const timeoutMs = o.timeoutMs ?? 5000;
    let sock: Socket | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const where = `${host}:${port}`;
    try {
      return await new Promise<WireConn>((resolve, reject) => {
        const fail = (why: string) => { reject(new WireError(`connecting to ${where}: ${why}`)); sock?.destroy(); };
        timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
        const raw = netConnect({ host, port });
        sock = raw;
        raw.setNoDelay(true);
        raw.on('error', (err) => fail(err.message));
        raw.on('close', () => fail('the server closed the connection'));
        // step 1: INFO (plain text, always first)
        let info: Info | undefined;
        const pre = new WireParser({
          msg: () => fail('a message before INFO'),
          ping: () => undefined, pong: () => undefined,
          err: (t) => fail(t),
          info: (j) => { try { info ??= JSON.parse(j) as Info; } catch { fail('an INFO that is not JSON'); } },
        }, 0);
        const onPre = (b: Buffer) => {
          try { pre.push(b); } catch (err) { fail((err as Error).message); return; }
          if (!info) return;
          raw.off('data', onPre);
          void upgrade(info);
        };
        raw.on('data', onPre);
        // step 2: TLS if asked (or if we carry a CA: an identity never talks in clear)
        const upgrade = async (i: Info) => {
          if (typeof i !== 'object' || i === null) { fail('an INFO that is not an object'); return; }
          let s: Socket = raw;
          if (i.tls_required || (ca && i.tls_available)) {
            raw.removeAllListeners('close');
            raw.removeAllListeners('error');
            s = await new Promise<Socket>((res) => {
              const t = tlsConnect({ socket: raw, host, ...({ highWaterMark: GATHER_MAX } as object), ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}), rejectUnauthorized: true }, () => res(t));
              t.on('error', (err) => fail(`TLS: ${err.message}`));
              t.on('close', () => fail('the server closed the connection during TLS'));
            });
            sock = s;
          } else if (ca) {
            fail('the server offers no TLS (credentials are never sent in clear)');
            return;
          }
          // step 3: CONNECT (the nkey's signature of the nonce), PING; its PONG: accepted
          const auth: Record<string, unknown> = {};
          if (creds) {
            if (!creds.nkey) { fail('the credentials carry no public nkey'); return; }
            if (typeof i.nonce !== 'string') { fail('the server sent no nonce to sign'); return; }
            auth.nkey = creds.nkey;
            auth.sig = edSign(null, Buffer.from(i.nonce), nkeyPrivate(creds.nkey, creds.seed)).toString('base64url');
          }
          const limit = typeof i.max_payload === 'number' && i.max_payload > 0 ? Math.min(i.max_payload, MAX_PAYLOAD_CAP) : 1024 * 1024;
          const conn = new WireConn(s, undefined as unknown as WireParser);
          let ready = false;
          conn.parser = new WireParser({
            msg: (b, sid, s0, s1, r0, r1, h0, b0, e) => { const h = conn.subs.get(sid); if (h) h(b, sid, s0, s1, r0, r1, h0, b0, e); },
            ping: () => { if (!conn.closed) s.write('PONG\r\n'); },
            pong: () => { if (!ready) { ready = true; clearTimeout(timer); s.off('close', onEarlyClose); conn.watch(); resolve(conn); } },
            err: (t) => { if (!ready) fail(`the server refused: ${t}`); else conn.end(new WireError(`the server said: ${t}`)); },
            info: () => undefined,
          }, limit);
          const onEarlyClose = () => fail('the server closed the connection after CONNECT');
          s.on('close', onEarlyClose);
          // Messages are taken from the socket in gulps, not as they come: nats-server 2.10
          // writes a pull's deliveries about one per TLS record and write, and node hands each
          // record over as a chunk of its own (880 bytes on average in the audit, against
          // 15 KB from 2.9), so a 'data' handler ran the parser, cut a frame and held its
          // piece once per message. 'readable' plus a read on the next turn of the loop lets
          // whatever arrives meanwhile pile up (up to GATHER_MAX) and parses it as one buffer:
          // ~300 KB per read, 1.25-1.3x the audit's events per CPU second (A/B, 100k events).
          let scheduled = false;
          const drain = () => {
            scheduled = false;
            for (let b: Buffer | null; (b = s.read() as Buffer | null) !== null;) {
              if (conn.closed) return;
              try { conn.parser.push(b); } catch (err) { if (!ready) fail((err as Error).message); else conn.end(err as Error); return; }
            }
          };
          s.on('readable', () => {
            if (!scheduled) { scheduled = true; setImmediate(drain); }
          });
          conn.drainNow = drain;
          s.write(connectFrame({ tls_required: s !== raw, ...(o.name ? { name: o.name } : {}), ...auth }));
        };
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** After the handshake: a close or socket error ends the connection with a reason. */
  private watch(): void {
    this.sock.removeAllListeners('error');
    // what already arrived is parsed first: a frame or an -ERR that came with the error or close
    this.sock.on('error', (err) => { this.drainNow(); this.end(new WireError(`connection: ${err.message}`)); });
    this.sock.on('close', () => { this.drainNow(); this.end(new WireError(this.parser.midFrame ? 'the server closed the connection in the middle of a frame' : 'the server closed the connection')); });
  }

  private end(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    this.sock.destroy();
    for (const f of this.closeHandlers.splice(0)) f(err);
  }

  /** Called once when the connection ends (err undefined: close() was called); returns its remover. */
  onClose(f: (err: Error | undefined) => void): () => void {
    if (this.closed) { f(this.failure); return () => undefined; }
    this.closeHandlers.push(f);
    return () => { const k = this.closeHandlers.indexOf(f); if (k >= 0) this.closeHandlers.splice(k, 1); };
  }

  get isClosed(): boolean { return this.closed; }

  /** Subscribes `subject`; `h` gets each message as positions (WireHandler.msg). Returns the sid. */
  subscribe(subject: string, h: MsgHandler): number {
    const sid = this.nextSid++;
    this.sock.write(subFrame(subject, sid));
    this.subs.set(sid, h);
    return sid;
  }

  unsubscribe(sid: number): void {
    if (!this.subs.delete(sid) || this.closed) return;
    this.sock.write(unsubFrame(sid));
  }

  publish(subject: string, payload: string, reply?: string): void {
    if (this.closed) return;
    this.sock.write(pubFrame(subject, payload, reply));
  }

  close(): void {
    this.end(undefined);
  }
}
