// A full snapshot read lazily, for `tsctl view --at` (pure, no I/O). readSnapshot makes every
// container whole (~600 ms of CPU per 100,000 on the bench), but view --at prints five fields
// of each (its row: id, name, state, node, requested by) and folds at most a delta's worth of
// events, which touch a few of them. Here a container is read only as far as its row, and its
// position kept; it is made whole (containerAt: the same reader as readSnapshot's) when the fold
// or a delta first uses it. The view's `containers` is a Proxy over that ordered map, so the
// reducer and applyJournal run unchanged and the result is the same view, in the same order.
// Anything this reader does not expect (another version, a frame or container of an unusual
// shape, an id an object would order or treat otherwise) throws LazyFallback, and so does a
// container that turns out broken when made: the caller then starts again with readSnapshot,
// whose answer (a view, or its SnapshotError) is the one given.
import { isNot, Reader, WireError } from './msgpack.js';
import { CONTAINER, containerAt, SnapshotError } from './snapshot.js';
import { emptyView, type ClusterView, type ContainerView } from './reducer.js';

/** This reader cannot give what readSnapshot would: start again with it. */
export class LazyFallback extends Error {
  constructor(message: string) { super(message); this.name = 'LazyFallback'; }
}

const slot = (name: string) => CONTAINER.findIndex(([k]) => k === name);
const ID = slot('id'), NAME = slot('name'), NODE = slot('node'), STATE = slot('state'), BY = slot('requestedBy');
// the row's fields are read straight when they are where the writer puts them (else: the whole container, now)
const QUICK = ID === 0 && NAME === 1 && NODE === 2 && STATE === 4 && BY === 7 && CONTAINER[NODE]![1] === 1 && CONTAINER[STATE]![1] === 1 && CONTAINER[BY]![1] === 1;

/** A key a plain object would not keep in insertion order (an array index), or not as a property at all. */
export function oddKey(k: string): boolean {
  if (k === '__proto__') return true;
  if (k.length > 10 || k.length === 0) return false;
  const c = k.charCodeAt(0);
  return c >= 48 && c <= 57 && /^(0|[1-9]\d*)$/.test(k) && Number(k) < 4294967295;
}

/** One row of `view --at`'s listing. */
export interface Row { id: string; name: unknown; state: unknown; node: unknown; requestedBy: unknown }

/** The containers of a lazily read snapshot: id → the container (made) or its place in the bytes (a number). */
export class LazyContainers {
  readonly map = new Map<string, ContainerView | number>();
  private bodies: Uint8Array[] = [];
  private tables: string[][] = [];
  // per container not yet made: its frame, its tuple's position, its row's fields (names, and table indices)
  private frame: number[] = [];
  private pos: number[] = [];
  private names: string[] = [];
  private nodes: number[] = [];
  private states: number[] = [];
  private bys: number[] = [];
  private reader = new Reader();
  /** containers made whole so far (for tests and the trace) */
  made = 0;

  /** Reads frame `body`'s containers (`k` at `kAt`, with its table), in order, into the map. */
  scan(body: Uint8Array, kAt: number, table: string[]): void {
    const f = this.bodies.length;
    this.bodies.push(body); this.tables.push(table);
    const r = this.reader.reset(body).at(kAt);
    const n = r.arrayLen();
    if (isNot(n)) throw new LazyFallback('a frame\'s containers are not a list');
    for (let j = 0; j < n; j++) {
      const at = r.pos;
      const len = r.arrayLen();
      if (isNot(len)) throw new LazyFallback('a container is not a tuple');
      // quick: the row's fields all there, and not given again among the fields outside the
      // slots (the tuple's last item, a map: untuple lets it have the last word)
      if (QUICK && len > BY && len <= CONTAINER.length + 1) {
        const id = r.str(), name = r.str(), node = r.num();
        if (!isNot(id) && !isNot(name) && !isNot(node)) {
          r.pos = skip(body, r.pos, 1); // spec
          const state = r.num();
          if (!isNot(state)) {
            r.pos = skip(body, r.pos, 2); // desired, createdAt
            const by = r.num();
            if (!isNot(by) && ok(node, table) && ok(state, table) && ok(by, table)) {
              r.pos = skip(body, r.pos, Math.min(len, CONTAINER.length) - BY - 1);
              if (len <= CONTAINER.length || restOk(r)) {
                if (oddKey(id)) throw new LazyFallback(`a container id ${JSON.stringify(id)}`);
                this.map.set(id, this.frame.length);
                this.frame.push(f); this.pos.push(at); this.names.push(name);
                this.nodes.push(node); this.states.push(state); this.bys.push(by);
                continue;
              }
            }
          }
        }
      }
      // anything else: made whole now (readSnapshot's reader), and the cursor past it
      const c = this.make(f, at);
      r.reset(body).at(at).skip();
      if (oddKey(c.id)) throw new LazyFallback(`a container id ${JSON.stringify(c.id)}`);
      this.map.set(c.id, c);
    }
    this.scanned = r.pos;
  }

  /** Where the last scan ended (past the frame's `k`). */
  scanned = 0;

  private make(f: number, at: number): ContainerView {
    this.made += 1;
    try { return containerAt(this.reader, this.bodies[f]!, at, this.tables[f]!); } catch (err) {
      if (err instanceof SnapshotError || err instanceof WireError) throw new LazyFallback(err.message);
      throw err;
    }
  }

  /** The container `id`, made whole if it was not (and kept). */
  get(id: string): ContainerView | undefined {
    const e = this.map.get(id);
    if (typeof e !== 'number') return e;
    const c = this.make(this.frame[e]!, this.pos[e]!);
    this.map.set(id, c); // in place: the order stays
    return c;
  }

  /** Every container's row, in the view's order. */
  *rows(): Generator<Row> {
    for (const [id, e] of this.map) yield this.row(id, e);
  }

  /**
   * Every container's row, in the view's order, as `f`'s arguments: no object per row and no
   * entry array per step (a Map's forEach), for the 100,000 rows of view --at's table.
   */
  eachRow(f: (id: string, name: unknown, state: unknown, node: unknown, requestedBy: unknown) => void): void {
    this.map.forEach((e, id) => {
      if (typeof e !== 'number') { f(id, e.name, e.state, e.node, e.requestedBy); return; }
      const t = this.tables[this.frame[e]!]!;
      f(id, this.names[e], t[this.states[e]!], t[this.nodes[e]!], t[this.bys[e]!]);
    });
  }

  /** The row of the entry `e` (a container, or one not made: from what the scan kept). */
  row(id: string, e: ContainerView | number): Row {
    if (typeof e !== 'number') return e;
    const t = this.tables[this.frame[e]!]!;
    return { id, name: this.names[e], state: t[this.states[e]!], node: t[this.nodes[e]!], requestedBy: t[this.bys[e]!] };
  }

  /**
   * `containers` for the view: a Proxy with a plain object's behaviour over the map (reads make
   * a container whole; a listing lists the map's ids in order). A key a plain object would treat
   * otherwise throws LazyFallback.
   */
  record(): Record<string, ContainerView> {
    const check = (k: string | symbol): string => {
      if (typeof k !== 'string' || oddKey(k)) throw new LazyFallback(`a container key ${String(k)}`);
      return k;
    };
    return new Proxy({} as Record<string, ContainerView>, {
      // not an id: what a plain object inherits (toString...)
      get: (t, k) => (typeof k !== 'symbol' && this.map.has(check(k)) ? this.get(k) : Reflect.get(t, k)),
      has: (t, k) => (typeof k !== 'symbol' && this.map.has(check(k))) || Reflect.has(t, k),
      set: (_t, k, v: ContainerView) => { this.map.set(check(k), v); return true; },
      deleteProperty: (_t, k) => { this.map.delete(check(k)); return true; },
      ownKeys: () => [...this.map.keys()],
      getOwnPropertyDescriptor: (_t, k) => {
        if (!this.map.has(check(k))) return undefined;
        return { value: this.get(k as string), writable: true, enumerable: true, configurable: true };
      },
      defineProperty: (_t, k, d) => { if (!('value' in d)) throw new LazyFallback('an accessor on a container key'); this.map.set(check(k), d.value as ContainerView); return true; },
      setPrototypeOf: () => { throw new LazyFallback('the containers\' prototype set'); },
    });
  }
}

/**
 * The position after `n` msgpack values from `p`: the scan's step over the fields it does not
 * read, one switch per byte and no recursion (Reader.skip costs several calls per value, most
 * of this reader's time). Only the structure is checked (lengths within the bytes): what is
 * stepped over is checked by containerAt if the container is ever made whole.
 */
function skip(b: Uint8Array, p: number, n: number): number {
  const end = b.length;
  const u16 = (q: number) => (b[q]! << 8) | b[q + 1]!;
  const u32 = (q: number) => ((b[q]! << 24) >>> 0) + ((b[q + 1]! << 16) | (b[q + 2]! << 8) | b[q + 3]!);
  for (; n > 0; n--) {
    if (p >= end) throw new WireError(`insufficient data at byte ${p}`);
    const x = b[p++]!;
    if (x <= 0x7f || x >= 0xe0) continue;
    if (x >= 0xa0 && x <= 0xbf) { p += x & 0x1f; continue; }
    if (x >= 0x90 && x <= 0x9f) { n += x & 0x0f; continue; }
    if (x >= 0x80 && x <= 0x8f) { n += 2 * (x & 0x0f); continue; }
    if (p + 4 > end && x !== 0xc0 && x !== 0xc2 && x !== 0xc3) {
      // near the end: the fixed-size cases below read up to 4 bytes ahead
      if (x === 0xcc || x === 0xd0 || x === 0xd9 || x === 0xc4 || x === 0xc7 || x === 0xd4) { if (p >= end) throw new WireError(`insufficient data at byte ${p}`); }
      else if (p + 2 > end) throw new WireError(`insufficient data at byte ${p}`);
    }
    switch (x) {
      case 0xc0: case 0xc2: case 0xc3: continue;
      case 0xcc: case 0xd0: p += 1; continue;
      case 0xcd: case 0xd1: p += 2; continue;
      case 0xce: case 0xd2: case 0xca: p += 4; continue;
      case 0xcf: case 0xd3: case 0xcb: p += 8; continue;
      case 0xd9: case 0xc4: p += 1 + b[p]!; continue;
      case 0xda: case 0xc5: p += 2 + u16(p); continue;
      case 0xdb: case 0xc6: if (p + 4 > end) break; p += 4 + u32(p); continue;
      case 0xdc: n += u16(p); p += 2; continue;
      case 0xdd: if (p + 4 > end) break; n += u32(p); p += 4; continue;
      case 0xde: n += 2 * u16(p); p += 2; continue;
      case 0xdf: if (p + 4 > end) break; n += 2 * u32(p); p += 4; continue;
      case 0xd4: p += 2; continue;
      case 0xd5: p += 3; continue;
      case 0xd6: p += 5; continue;
      case 0xd7: p += 9; continue;
      case 0xd8: p += 17; continue;
      case 0xc7: p += 2 + b[p]!; continue;
      case 0xc8: p += 3 + u16(p); continue;
      case 0xc9: if (p + 4 > end) break; p += 5 + u32(p); continue;
      default: throw new WireError(`byte 0x${x.toString(16)} at ${p - 1} starts no msgpack value`);
    }
    throw new WireError(`insufficient data at byte ${p}`);
  }
  if (p > end) throw new WireError(`insufficient data at byte ${end}`);
  return p;
}

const ROW = new Set(['id', 'name', 'node', 'state', 'requestedBy']);

/** The tuple's last item at the cursor (stepped over): nil, or a map that names none of the row's fields. */
function restOk(r: Reader): boolean {
  if (r.nil()) return true;
  const n = r.mapLen();
  if (isNot(n)) { r.skip(); return false; }
  let fine = true;
  for (let i = 0; i < n; i++) { const k = r.key(); if (typeof k !== 'string' || ROW.has(k)) fine = false; r.skip(); }
  return fine;
}

const ok = (i: number, table: string[]) => Number.isInteger(i) && i >= 0 && i < table.length;

/**
 * The view a full snapshot holds, its containers read lazily (their map beside it). Never a
 * SnapshotError: whatever is wrong or unusual throws LazyFallback, and readSnapshot then gives
 * the view or says, in its own words, what is wrong.
 */
export function readSnapshotLazy(buf: Uint8Array): { view: ClusterView; lazy: LazyContainers } {
  const lazy = new LazyContainers();
  const r = new Reader();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let last: Record<string, unknown> | undefined;
  for (let at = 0; at + 4 <= buf.length;) {
    const len = dv.getUint32(at);
    if (at + 4 + len > buf.length) break; // a torn tail ends the frames (as frames() reads them)
    const body = buf.subarray(at + 4, at + 4 + len);
    if (last) throw new LazyFallback('frames after the last one');
    try { last = frameOf(lazy, r, body); } catch (err) {
      if (err instanceof WireError) throw new LazyFallback(`frame at byte ${at}: ${err.message}`);
      throw err;
    }
    at += 4 + len;
  }
  if (!last || last.v !== 2) throw new LazyFallback(last ? `snapshot version ${JSON.stringify(last.v)}` : 'no last frame');
  const d = last.d ?? [];
  if (!Array.isArray(d)) throw new LazyFallback('a frame\'s `d` is not a list');
  for (const id of d) {
    if (typeof id !== 'string' || oddKey(id)) throw new LazyFallback('an odd id in `d`');
    lazy.map.delete(id);
  }
  if (typeof last.meta !== 'object' || last.meta === null || Array.isArray(last.meta) || (last.nodes !== undefined && (typeof last.nodes !== 'object' || last.nodes === null))) throw new LazyFallback('an unusual last frame');
  const view: ClusterView = { ...emptyView(), ...(last.meta as object), containers: lazy.record(), nodes: (last.nodes ?? {}) as ClusterView['nodes'] };
  if (lazy.map.size !== last.count) throw new LazyFallback(`${lazy.map.size} containers, the last frame says ${String(last.count)}`);
  return { view, lazy };
}

/**
 * One frame's keys, its containers (`k`) scanned into `lazy` when `now` and they follow their
 * table (else `kAt`: where they are, stepped over, for the caller to scan).
 */
function parseFrame(lazy: LazyContainers, r: Reader, body: Uint8Array, now: boolean): { f: Record<string, unknown>; kAt: number; table: string[] } {
  r.reset(body);
  const n = r.mapLen();
  if (isNot(n)) throw new LazyFallback('a frame that is not a map');
  const f: Record<string, unknown> = {};
  let kAt = -1;
  let table: string[] | undefined;
  for (let i = 0; i < n; i++) {
    const key = r.key();
    if (typeof key !== 'string' || Object.hasOwn(f, key) || (key === 'k' && kAt !== -1) || (key === 't' && table)) throw new LazyFallback('an unusual frame');
    if (key === 'k') {
      // after its table (as the writer puts them): read now; before it (older snapshots): once it is read
      if (table && now) { lazy.scan(body, r.pos, table); r.pos = lazy.scanned; kAt = -2; } else { kAt = r.pos; r.pos = skip(body, r.pos, 1); }
      continue;
    }
    if (key === 't') {
      const m = r.arrayLen();
      if (isNot(m)) throw new LazyFallback('a string table that is not a list');
      table = new Array<string>(m);
      for (let j = 0; j < m; j++) { const x = r.str(); if (isNot(x)) throw new LazyFallback('a string table entry that is not a string'); table[j] = x; }
      continue;
    }
    if (key === 'c') throw new LazyFallback('containers as maps (version 1)');
    f[key] = r.value();
  }
  return { f, kAt, table: table ?? [] };
}

/** One frame of a full snapshot: its containers scanned into `lazy`; the frame itself (without them) if it is the last. */
function frameOf(lazy: LazyContainers, r: Reader, body: Uint8Array): Record<string, unknown> | undefined {
  const { f, kAt, table } = parseFrame(lazy, r, body, true);
  if (kAt >= 0) lazy.scan(body, kAt, table);
  return f.meta ? f : undefined;
}

/** `buf`'s frames in order (a torn tail ends them, as frames() reads them). */
function* bodies(buf: Uint8Array): Generator<[Uint8Array, number]> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let at = 0; at + 4 <= buf.length;) {
    const len = dv.getUint32(at);
    if (at + 4 + len > buf.length) return;
    yield [buf.subarray(at + 4, at + 4 + len), at];
    at += 4 + len;
  }
}

/**
 * applyJournal for a view read by readSnapshotLazy: a delta's containers go into the map as
 * positions in the delta's bytes (made whole only when used), in applyJournal's order; the
 * same frames applied, the same count returned. LazyFallback for anything unusual (a frame
 * applyJournal would refuse among them: the caller starts again with the whole decode).
 */
export function applyJournalLazy(view: ClusterView, lazy: LazyContainers, buf: Uint8Array, base: number): number {
  let n = 0;
  const r = new Reader();
  for (const [body, at] of bodies(buf)) {
    let p;
    try { p = parseFrame(lazy, r, body, false); } catch (err) {
      if (err instanceof WireError) throw new LazyFallback(`frame at byte ${at}: ${err.message}`);
      throw err;
    }
    const { f, kAt, table } = p;
    if (f.base !== base || f.seq === undefined || (f.seq as number) <= view.seq) continue;
    if (typeof f.seq !== 'number' || (f.d !== undefined && !Array.isArray(f.d)) || (f.meta !== undefined && (typeof f.meta !== 'object' || f.meta === null))) throw new LazyFallback('an unusual delta');
    if (kAt >= 0) lazy.scan(body, kAt, table);
    for (const id of (f.d ?? []) as unknown[]) {
      if (typeof id !== 'string' || oddKey(id)) throw new LazyFallback('an odd id in `d`');
      lazy.map.delete(id);
    }
    Object.assign(view, f.meta, { seq: f.seq });
    if (f.nodes) view.nodes = f.nodes as ClusterView['nodes'];
    n += 1;
  }
  return n;
}
