// Container output: the monitor appends framed records to a file that outlives the
// agent; this module tails those files, publishes each record live on logs.<node>.<ctr>,
// and serves the history on agent.<node>.logs. A record's file offset travels with it so
// a client joining mid-stream can stitch history and live output without gaps or repeats.
import { openSync, readSync, closeSync, fstatSync, watch, type FSWatcher } from 'node:fs';
import { headers as natsHeaders, type NatsConnection } from 'nats';
import { decodeFrames, FRAME_HEADER } from './runtime/logfile.js';
import { subjects } from '../shared/subjects.js';

const CHUNK = 256 * 1024;

interface Tail { fd: number; offset: number; watcher?: FSWatcher; poll: NodeJS.Timeout }

export class LogStreamer {
  private tails = new Map<string, Tail>();

  constructor(private nc: NatsConnection, private node: string, private logPath: (id: string) => string) {}

  /** Starts publishing a container's new output from `fromOffset` (0 for a new container). */
  follow(id: string, fromOffset = 0): void {
    if (this.tails.has(id)) return;
    let fd: number;
    try { fd = openSync(this.logPath(id), 'r'); } catch { return; }
    const t: Tail = { fd, offset: fromOffset, poll: setInterval(() => this.pump(id), 500) };
    t.poll.unref();
    try { t.watcher = watch(this.logPath(id), () => this.pump(id)); } catch { /* the poll covers it */ }
    this.tails.set(id, t);
    this.pump(id);
  }

  /** Current end of the log, for adopting a running container without replaying its past. */
  size(id: string): number {
    try { const fd = openSync(this.logPath(id), 'r'); const s = fstatSync(fd).size; closeSync(fd); return s; } catch { return 0; }
  }

  /** Publishes what is left and the end marker (with `extra` headers: an exec's exit code); called once the container has exited. */
  finish(id: string, extra: Record<string, string> = {}): void {
    const t = this.tails.get(id);
    if (t) {
      this.pump(id);
      t.watcher?.close();
      clearInterval(t.poll);
      closeSync(t.fd);
      this.tails.delete(id);
    }
    const h = natsHeaders();
    h.set('eof', '1');
    for (const [k, v] of Object.entries(extra)) h.set(k, v);
    this.nc.publish(subjects.logs(this.node, id), new Uint8Array(0), { headers: h });
  }

  stop(): void {
    for (const [, t] of this.tails) { t.watcher?.close(); clearInterval(t.poll); closeSync(t.fd); }
    this.tails.clear();
  }

  private pump(id: string): void {
    const t = this.tails.get(id);
    if (!t) return;
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = readSync(t.fd, buf, 0, CHUNK, t.offset);
      if (n <= 0) return;
      const { frames, consumed } = decodeFrames(buf.subarray(0, n), t.offset);
      let at = t.offset;
      for (const f of frames) {
        const h = natsHeaders();
        h.set('s', f.stream === 'stderr' ? '2' : '1');
        h.set('o', String(at));
        at += FRAME_HEADER + f.data.length;
        this.nc.publish(subjects.logs(this.node, id), f.data, { headers: h });
      }
      if (consumed === 0) return; // a partial frame: the rest is still being written
      t.offset += consumed;
    }
  }

  /** One page of history from `offset`: frames as [stream, base64] pairs. */
  page(id: string, offset: number): { frames: [number, string][]; next: number; end: boolean } {
    let fd: number;
    try { fd = openSync(this.logPath(id), 'r'); } catch { return { frames: [], next: offset, end: true }; }
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = readSync(fd, buf, 0, CHUNK, offset);
      const { frames, consumed } = decodeFrames(buf.subarray(0, Math.max(0, n)), offset);
      return { frames: frames.map((f) => [f.stream === 'stderr' ? 2 : 1, f.data.toString('base64')]), next: offset + consumed, end: n < CHUNK || consumed === 0 };
    } finally { closeSync(fd); }
  }
}
