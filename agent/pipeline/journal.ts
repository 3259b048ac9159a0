// An append-only journal with snapshots: the agent's checkpoint is written as small records
// appended to a segment file (one write(2) per batch), and a background compaction folds
// what the segments say into a snapshot so the files stay about as big as the state.
//
// Files in the folder (gen = a decimal counter):
//   journal.<gen>    records appended since snapshot.<gen> (or since the start, gen 1)
//   snapshot.<gen>   the whole state before journal.<gen>: written to .tmp, fsynced, renamed
// Opening loads the newest snapshot and replays journal.<gen>… after it in order. Compaction
// first opens journal.<gen+1> (appends go there from that instant), then writes
// snapshot.<gen+1> from the live state without blocking appends, then deletes the older files.
// A crash at any point leaves either the old snapshot and every segment after it, or the new
// snapshot and the new segment: both replay to the same state. This needs every record to set
// or delete one whole value (replaying one twice, or over a newer snapshot, changes nothing).
//
// Framing, per file: the 8-byte magic, then records as [u32 length][u32 crc32][JSON]. A record
// a crash cut short can only be the file's last: it is dropped (and truncated away) with a
// warning. Anything else that does not read (a bad checksum with records after it, an unknown
// record) is damage: opening fails with a JournalError naming the file and the byte, and
// nothing is changed on disk — the agent does not act on a memory it knows is wrong.
//
// No fsync per append: what the checkpoint guards against is an agent crash, after which the
// page cache still holds the write (json-file.ts says the same). The snapshot is fsynced
// before its rename because the rename lets the older files be deleted.
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { dirname, join } from 'node:path';
import { armed, failpoint } from '../failpoints.js';

export const MAGIC = Buffer.from('SWLJRNL1');
const HEADER = 8;
/** Far above any record (a container's spec is a few KiB): a bigger length is damage, not a record. */
export const MAX_RECORD = 16 << 20;
const END_KEY = '$end';

export class JournalError extends Error {
  /** `aside`: what to move away to start with an empty memory (the checkpoint's folder). */
  constructor(readonly path: string, readonly offset: number, what: string, aside = dirname(path)) {
    // the agent stops on it: say what is wrong, where, and what the way out costs
    super(`checkpoint ${path}: ${what} at byte ${offset}; the agent does not act on a damaged memory: `
      + `restore the file, or move ${aside} aside to start with an empty one (this host's containers are then removed)`);
    this.name = 'JournalError';
  }
}

// zlib.crc32 is in Node ≥ 20.15; the table version is for older ones.
const zcrc = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32;
let table: Uint32Array | undefined;
function tableCrc32(b: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; table[n] = c >>> 0; }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
export const crc32: (b: Uint8Array) => number = zcrc ?? tableCrc32;

/** Pure: records as frames, ready to append. */
export function encodeRecords(records: readonly unknown[]): Buffer {
  const bodies = records.map((r) => Buffer.from(JSON.stringify(r)));
  let n = 0;
  for (const b of bodies) n += HEADER + b.length;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const b of bodies) {
    out.writeUInt32LE(b.length, o);
    out.writeUInt32LE(crc32(b), o + 4);
    b.copy(out, o + HEADER);
    o += HEADER + b.length;
  }
  return out;
}

export interface Decoded {
  records: unknown[];
  /** Where each record starts. */
  at: number[];
  /** Where the readable part ends (the file's length unless torn). */
  end: number;
  /** Why the tail was dropped: a record a crash cut short. */
  torn?: string;
}

const allZero = (b: Uint8Array, from: number) => { for (let i = from; i < b.length; i++) if (b[i] !== 0) return false; return true; };

/**
 * Pure: the records of one file (magic included). A bad record that ends the file is a torn
 * tail (`torn`); one with more bytes after it, or a file that is not a journal, throws.
 */
export function decodeRecords(buf: Uint8Array, path: string): Decoded {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const magicLen = Math.min(b.length, MAGIC.length);
  if (!b.subarray(0, magicLen).equals(MAGIC.subarray(0, magicLen))) throw new JournalError(path, 0, 'not a swarmlite checkpoint file (bad magic)');
  if (b.length < MAGIC.length) return { records: [], at: [], end: 0, torn: 'the file header was cut short' };
  const records: unknown[] = [], at: number[] = [];
  let o = MAGIC.length;
  while (o < b.length) {
    const rest = b.length - o;
    if (rest < HEADER) return { records, at, end: o, torn: `a record header was cut short (${rest} of ${HEADER} bytes)` };
    const len = b.readUInt32LE(o);
    // a power loss can leave a tail of zeros where the data was never written
    if (len === 0 && allZero(b, o)) return { records, at, end: o, torn: `${rest} zero bytes` };
    if (len === 0 || len > MAX_RECORD) throw new JournalError(path, o, `a record of ${len} bytes (damaged)`);
    if (rest < HEADER + len) return { records, at, end: o, torn: `a record was cut short (${rest - HEADER} of ${len} bytes)` };
    const body = b.subarray(o + HEADER, o + HEADER + len);
    if (crc32(body) !== b.readUInt32LE(o + 4)) {
      if (o + HEADER + len === b.length) return { records, at, end: o, torn: 'the last record does not match its checksum' };
      throw new JournalError(path, o, 'a record does not match its checksum (damaged)');
    }
    try {
      records.push(JSON.parse(body.toString('utf8')));
      at.push(o);
    } catch {
      throw new JournalError(path, o, 'a record is not JSON (damaged)');
    }
    o += HEADER + len;
  }
  return { records, at, end: o };
}

export interface JournalOptions<R> {
  dir: string;
  /** The record typed, or a thrown Error saying what is wrong with it. */
  check(r: unknown): R;
  apply(r: R): void;
  /** The records that rebuild the whole state, read lazily while appends go on (see compact). */
  dump(): Iterable<R>;
  /** The journal is compacted once it is bigger than this and than the last snapshot. */
  minCompactBytes?: number;
  /**
   * Instead: compacted once it is bigger than this, whatever the snapshot's size (an operator's
   * or a test's setting: a fault-injection test needs a compaction at a known write).
   */
  compactBytes?: number;
  warn?(msg: string): void;
}

const NAME_RE = /^(snapshot|journal)\.(\d{1,15})$/;
const CHUNK_RECORDS = 500;

export class Journal<R> {
  private fd = -1;
  private gen = 1;
  /** Length of the segment appended to (a failed write is cut back to it). */
  private segSize = 0;
  /** Bytes of every segment after the last snapshot. */
  private sinceSnapshot = 0;
  private snapshotBytes = 0;
  private compacting?: Promise<void>;
  /** After a failed compaction, wait for this much more before the next try. */
  private retryAt = 0;
  readonly minCompactBytes: number;
  private warn: (m: string) => void;

  private constructor(private o: JournalOptions<R>) {
    this.minCompactBytes = o.minCompactBytes ?? 4 << 20;
    this.warn = o.warn ?? ((m) => console.error(`agent: ${m}`));
  }

  private path(kind: 'snapshot' | 'journal', gen: number): string { return join(this.o.dir, `${kind}.${gen}`); }

  /** Reads the folder into `apply`; throws JournalError on damage (nothing is changed then). */
  static open<R>(o: JournalOptions<R>): Journal<R> {
    const j = new Journal(o);
    j.load();
    return j;
  }

  /** Whether the folder holds a snapshot (it then is the whole truth with its segments). */
  static hasSnapshot(dir: string): boolean {
    try { return readdirSync(dir).some((n) => NAME_RE.exec(n)?.[1] === 'snapshot'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  private load(): void {
    mkdirSync(this.o.dir, { recursive: true });
    const snaps: number[] = [], segs: number[] = [];
    for (const n of readdirSync(this.o.dir)) {
      const m = NAME_RE.exec(n);
      if (m) (m[1] === 'snapshot' ? snaps : segs).push(Number(m[2]));
    }
    snaps.sort((a, b) => a - b);
    segs.sort((a, b) => a - b);
    const base = snaps.at(-1) ?? 0;
    if (base) this.loadSnapshot(base);
    const replay = segs.filter((g) => g >= base);
    const first = base || 1;
    // segments are made one after the other (the next before its snapshot): a gap means records were lost
    if (base && replay[0] !== base) throw new JournalError(this.path('journal', base), 0, 'the segment is missing (records were lost)');
    for (const [k, g] of replay.entries()) {
      if (g !== first + k) throw new JournalError(this.path('journal', first + k), 0, 'the segment is missing (records were lost)');
    }
    const torn: [string, number][] = [];
    for (const g of replay) {
      const p = this.path('journal', g);
      const d = decodeRecords(readFileSync(p), p);
      for (const [k, r] of d.records.entries()) this.applyChecked(r, p, d.at[k]);
      if (d.torn) torn.push([p, d.end]);
      this.sinceSnapshot += d.end;
    }
    // only now, with everything read: cut torn tails, drop what a finished compaction left
    for (const [p, end] of torn) {
      this.warn(`checkpoint ${p}: dropped a torn last record at byte ${end} (the agent died while writing it)`);
      const fd = openSync(p, 'r+');
      try { ftruncateSync(fd, end); } finally { closeSync(fd); }
    }
    for (const g of snaps) if (g < base) this.unlink(this.path('snapshot', g));
    for (const g of segs) if (g < base) this.unlink(this.path('journal', g));
    for (const n of readdirSync(this.o.dir)) if (n.endsWith('.tmp')) this.unlink(join(this.o.dir, n));
    this.gen = replay.at(-1) ?? first;
    this.fd = openSync(this.path('journal', this.gen), 'a', 0o600);
    this.segSize = fstatSync(this.fd).size;
    if (this.segSize < MAGIC.length) {
      // new, or a header a crash cut short (truncated to 0 above)
      ftruncateSync(this.fd, 0);
      writeAll(this.fd, MAGIC);
      this.sinceSnapshot += MAGIC.length - this.segSize;
      this.segSize = MAGIC.length;
    }
  }

  private loadSnapshot(gen: number): void {
    const p = this.path('snapshot', gen);
    const buf = readFileSync(p);
    const d = decodeRecords(buf, p);
    // a snapshot is renamed into place whole: a short one is damage, not a torn write
    const last = d.records.pop() as Record<string, unknown> | undefined;
    if (d.torn || !last || typeof last !== 'object' || last[END_KEY] !== d.records.length) {
      throw new JournalError(p, d.end, 'the snapshot is incomplete (damaged)');
    }
    for (const [k, r] of d.records.entries()) this.applyChecked(r, p, d.at[k]);
    this.snapshotBytes = buf.length;
  }

  private applyChecked(r: unknown, path: string, at: number): void {
    let rec: R;
    try { rec = this.o.check(r); } catch (err) { throw new JournalError(path, at, `a record that is not a checkpoint change (${(err as Error).message})`); }
    this.o.apply(rec);
  }

  /** Appends records in one write. On a failed write the file is cut back: no half record stays. */
  append(records: readonly R[]): void {
    if (!records.length) return;
    const buf = encodeRecords(records);
    if (armed('checkpoint:torn-append')) {
      writeSync(this.fd, buf, 0, buf.length >> 1);
      failpoint('checkpoint:torn-append');
    }
    try {
      writeAll(this.fd, buf);
    } catch (err) {
      try { ftruncateSync(this.fd, this.segSize); } catch { /* the write's error is the one to report */ }
      throw err;
    }
    this.segSize += buf.length;
    this.sinceSnapshot += buf.length;
    this.maybeCompact();
  }

  /** Total bytes of the files that make up the state now (for tests and the bench). */
  get bytes(): { snapshot: number; journal: number; gen: number } { return { snapshot: this.snapshotBytes, journal: this.sinceSnapshot, gen: this.gen }; }

  /** Starts a compaction in the background once the journal outgrew the snapshot (and the minimum). */
  maybeCompact(): void {
    const at = this.o.compactBytes ?? Math.max(this.minCompactBytes, this.snapshotBytes);
    if (this.compacting || this.sinceSnapshot < Math.max(at, this.retryAt)) return;
    void this.compact().catch((err) => {
      this.retryAt = this.sinceSnapshot * 2;
      this.warn(`checkpoint compaction failed (the journal is kept, retried later): ${(err as Error).message}`);
    });
  }

  /** Folds the state into a snapshot; resolves when the older files are gone. One at a time. */
  compact(): Promise<void> {
    this.compacting ??= this.compactOnce().finally(() => { this.compacting = undefined; });
    return this.compacting;
  }

  private async compactOnce(): Promise<void> {
    // rotate first: from here on every change goes to the new segment, so a snapshot that
    // reads some changes made after this instant is still right (they are replayed again)
    const gen = this.gen + 1;
    const fd = openSync(this.path('journal', gen), 'w', 0o600);
    writeAll(fd, MAGIC);
    closeSync(this.fd);
    this.fd = fd;
    this.gen = gen;
    this.segSize = MAGIC.length;
    const before = this.sinceSnapshot;
    this.sinceSnapshot = MAGIC.length;
    failpoint('checkpoint:after-rotate');
    const tmp = `${this.path('snapshot', gen)}.tmp`;
    const fh = await openFile(tmp, 'w', 0o600);
    let size = 0, count = 0;
    try {
      await fh.write(MAGIC);
      size += MAGIC.length;
      let batch: R[] = [];
      const put = async () => {
        const buf = encodeRecords(batch);
        batch = [];
        await fh.write(buf);
        size += buf.length;
        failpoint('checkpoint:mid-snapshot');
      };
      for (const r of this.o.dump()) {
        batch.push(r);
        count++;
        // encoded and written a chunk at a time: the event loop runs appends in between
        if (batch.length >= CHUNK_RECORDS) await put();
      }
      batch.push({ [END_KEY]: count } as R);
      await put();
      await fh.datasync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      try { unlinkSync(tmp); } catch { /* already gone */ }
      this.sinceSnapshot += before;
      throw err;
    }
    await fh.close();
    renameSync(tmp, this.path('snapshot', gen));
    failpoint('checkpoint:after-snapshot');
    this.snapshotBytes = size;
    for (const n of readdirSync(this.o.dir)) {
      const m = NAME_RE.exec(n);
      if (m && Number(m[2]) < gen) this.unlink(join(this.o.dir, n));
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private unlink(p: string): void {
    try { unlinkSync(p); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  for (let o = 0; o < buf.length;) o += writeSync(fd, buf, o, buf.length - o);
}
