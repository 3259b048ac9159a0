// -i / -t of a container's own process (tsctl run -i/-it, tsctl attach): what its owner
// publishes on stdin.<node>.<owner>.<ctr> goes into the FIFO its monitor keeps
// (<state>/attach, native/src/monitor/monitor_attach.c) as records: data, end of stdin,
// resize. The FIFO is the monitor's, not this agent's: a restarted agent opens it again and
// the session goes on, and nothing here is kept but what the process has not read yet.
//
// Who may write: the subject names a user, the NATS server lets a user publish only under its
// own name (shared/nats/trust.ts), and the agent writes only what comes under the name of the
// user who ran the container (the authenticated `user` of its ContainerRequested). Anyone
// else's message is dropped; a bad resize gets one line on the container's output subject.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from 'nats';
import { subjects } from '../shared/subjects.js';
import { CONTAINER_ID_RE } from '../shared/ids.js';
import { parseResize } from './tty.js';

/** A record is at most PIPE_BUF bytes, so one write of it is atomic (SL_ATTACH_* in monitor.h). */
export const ATTACH_HDR = 4;
export const ATTACH_DATA_MAX = 4096 - ATTACH_HDR;

function record(type: 'd' | 'e' | 'r', payload: Uint8Array): Buffer {
  const b = Buffer.alloc(ATTACH_HDR + payload.length);
  b[0] = type.charCodeAt(0);
  b.writeUInt16LE(payload.length, 2);
  b.set(payload, ATTACH_HDR);
  return b;
}

/** Pure: stdin bytes as data records of at most ATTACH_DATA_MAX bytes each. */
export function dataRecords(data: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += ATTACH_DATA_MAX) out.push(record('d', data.subarray(i, i + ATTACH_DATA_MAX)));
  return out;
}
export const eofRecord = (): Buffer => record('e', new Uint8Array(0));
export function resizeRecord(rows: number, cols: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt16LE(rows, 0);
  p.writeUInt16LE(cols, 2);
  return record('r', p);
}

export type StdinMessage = { kind: 'data'; records: Buffer[] } | { kind: 'eof' } | { kind: 'resize'; record: Buffer } | { kind: 'error'; line: string };

/** Pure: what one message on a stdin subject asks (a `resize: ROWS COLS` header, an `eof` header, or bytes). */
export function stdinMessage(get: (k: string) => string | undefined, data: Uint8Array): StdinMessage {
  const resize = get('resize');
  if (resize) {
    const s = parseResize(resize);
    return typeof s === 'string' ? { kind: 'error', line: s } : { kind: 'resize', record: resizeRecord(s.rows, s.cols) };
  }
  if (get('eof') || data.length === 0) return { kind: 'eof' };
  return { kind: 'data', records: dataRecords(data) };
}

/** What the agent knows of a container when input for it arrives. */
export interface AttachTarget {
  /** the user who ran it (ContainerRequested's authenticated user) */
  owner?: string;
  interactive: boolean;
  tty: boolean;
  /** <state>/attach, the monitor's FIFO */
  fifo: string;
}

/**
 * At most this much input waiting for one container (core NATS has no back-pressure);
 * beyond it the input is cut: stdin ends and the client gets a line saying so.
 */
const PENDING_MAX = 32 << 20;
/** How soon a full FIFO is tried again. */
const RETRY_MS = 20;

interface Pending { q: Buffer[]; bytes: number; fd?: number; timer?: NodeJS.Timeout; cut: boolean }

export class ContainerInputs {
  private sub?: Subscription;
  private pending = new Map<string, Pending>();

  constructor(private nc: NatsConnection, private node: string, private lookup: (id: string) => AttachTarget | undefined) {}

  start(): void {
    // one subscription for the node's containers (an exec's session has its own, in exec.ts;
    // its ids are no container's, so they find nothing here)
    this.sub = this.nc.subscribe(`stdin.${this.node}.*.*`, { callback: (_e, m) => { try { this.message(m); } catch (err) { console.error(`agent: stdin: ${(err as Error).message}`); } } });
  }

  private message(m: Msg): void {
    const [, , user, id] = m.subject.split('.');
    if (!id || !CONTAINER_ID_RE.test(id)) return;
    const t = this.lookup(id);
    if (!t || (!t.interactive && !t.tty)) return;
    // only its owner's: another user's bytes never reach the process, whatever the subject says
    if (t.owner === undefined || user !== t.owner) return;
    const what = stdinMessage((k) => m.headers?.get(k) || undefined, m.data);
    if (what.kind === 'error') { this.say(id, what.line); return; }
    if (what.kind === 'resize') { if (t.tty) this.push(id, t.fifo, [what.record]); return; }
    if (!t.interactive) return;
    this.push(id, t.fifo, what.kind === 'eof' ? [eofRecord()] : what.records);
  }

  private say(id: string, line: string): void {
    const h = natsHeaders();
    h.set('s', '2');
    this.nc.publish(subjects.logs(this.node, id), new TextEncoder().encode(`swarmlite: ${line}\n`), { headers: h });
  }

  private push(id: string, fifo: string, recs: Buffer[]): void {
    let p = this.pending.get(id);
    if (!p) this.pending.set(id, (p = { q: [], bytes: 0, cut: false }));
    if (p.cut) return;
    for (const r of recs) { p.q.push(r); p.bytes += r.length; }
    if (p.bytes > PENDING_MAX) {
      p.cut = true;
      p.q = [eofRecord()];
      p.bytes = ATTACH_HDR;
      this.say(id, `stdin cut: the process had not read ${PENDING_MAX >> 20} MiB of it yet`);
    }
    this.pump(id, fifo);
  }

  /** Writes whole records while the FIFO takes them; a full one is tried again shortly. */
  private pump(id: string, fifo: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    p.timer = undefined;
    try {
      // O_NONBLOCK: no reader (the process is gone) is ENXIO, not an open that waits (libuv adds O_CLOEXEC)
      p.fd ??= openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      while (p.q.length) {
        writeSync(p.fd, p.q[0]!);
        p.bytes -= p.q.shift()!.length;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        p.timer = setTimeout(() => this.pump(id, fifo), RETRY_MS);
        return;
      }
      // ENOENT, ENXIO, EPIPE: its process has ended; its input goes with it
      p.q.length = 0;
    }
    this.drop(id);
  }

  private drop(id: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    if (p.fd !== undefined) { try { closeSync(p.fd); } catch { /* closed */ } }
    // after a cut's end record the monitor drops whatever data follows
    this.pending.delete(id);
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const id of [...this.pending.keys()]) this.drop(id);
  }
}
