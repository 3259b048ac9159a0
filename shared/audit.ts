// Pure: what `tsctl audit verify` finds in a replay of the stream. Fed every message in
// stream order (decoded or not), it reports, each with its stream position: deleted
// messages (gaps in stream sequences), a truncated or purged head, forged events (bad or
// missing signature, unknown key, a source writing where it may not), modified events
// (a chain link that does not name its predecessor's hash), lost writes (gaps in a
// source's srcSeq) and reorderings (a srcSeq that goes back).
import type { AnyEvent } from './events.js';
import { DESIRED_TYPES } from './events.js';
import { BURST_MAX, KeyRing, keySubjectToken, registration, verifyEventSig, verifySig } from './signing.js';
import type { ArchiveMark } from './archive.js';

interface Item { seq: number; e: AnyEvent; bytes: Uint8Array; hash: string; sig: string | undefined }

/**
 * Events of one source checked by one signature at most (see Auditor.event). A run's events
 * are all vouched for by its last signature through their links, however long the run: the
 * bound only keeps what waits for that signature small (a few hundred KB per source). At 256
 * the ed25519 verifications were a tenth of an audit's CPU.
 */
const RUN = 4096;

export type FindingKind = 'deleted' | 'truncated' | 'undecodable' | 'forged' | 'modified' | 'lost' | 'reordered' | 'anchor' | 'archive';
export interface Finding { kind: FindingKind; seq: number; src?: string; detail: string }

/** The signed anchor (shared/nats/anchor.ts): the stream's last sequence and every source's head, at some time. */
export interface Anchor {
  lastSeq: number; heads: Record<string, { srcSeq: number; hash: string }>; ts: number;
  /** the sealed archive as the controller last wrote it (shared/archive.ts): a purge past it, or a segment gone, disagrees */
  archive?: ArchiveMark;
}

/** Which source may write on a subject: desired, image, cluster and controller subjects the controller; a node's its agent. */
export function writerOf(subject: string): string | undefined {
  // the second and third tokens by position (this runs for every event of an audit: no split, and
  // a node's source name made once per node, not per event)
  if (!subject.startsWith('ev.')) return undefined;
  const b = subject.indexOf('.', 3);
  const t1 = b < 0 ? subject.slice(3) : subject.slice(3, b);
  const c = b < 0 ? -1 : subject.indexOf('.', b + 1);
  const t2 = b < 0 ? undefined : c < 0 ? subject.slice(b + 1) : subject.slice(b + 1, c);
  switch (t1) {
    case 'desired': case 'image': case 'cluster': case 'controller': case 'claim': case 'service': return 'controller';
    case 'state': case 'node': return t2 ? nodeSource(t2) : undefined;
    case 'keys': return t2 === 'controller' ? 'controller' : t2?.startsWith('node-') ? nodeSource(t2.slice(5)) : undefined;
    default: return undefined;
  }
}

/**
 * Whether `src` is a node (`node:<name>`) and `subject` one of its state or node subjects: then
 * writerOf(subject) is `src`. false says nothing (writerOf decides): a check made for every event
 * of an audit, with no substring made nor looked up.
 */
export function nodeWrites(subject: string, src: string): boolean {
  const n = src.length - 5;
  if (n <= 0 || !src.startsWith('node:')) return false;
  const at = subject.startsWith('ev.state.') ? 9 : subject.startsWith('ev.node.') ? 8 : -1;
  if (at < 0) return false;
  // a name with a dot is no one token (SOURCE_RE has none; this does not rely on it)
  for (let i = 0; i < n; i++) { const c = src.charCodeAt(5 + i); if (c === 0x2e || subject.charCodeAt(at + i) !== c) return false; }
  return subject.length === at + n || subject.charCodeAt(at + n) === 0x2e;
}

const nodeSources = new Map<string, string>();
/** `node:<name>`, interned (a few hundred nodes at most are named; a hostile log may name more: then made each time). */
function nodeSource(name: string): string {
  let s = nodeSources.get(name);
  if (s === undefined) {
    s = `node:${name}`;
    if (nodeSources.size < 4096) nodeSources.set(name, s);
  }
  return s;
}

const DESIRED = new Set<string>(DESIRED_TYPES);

export class Auditor {
  readonly findings: Finding[] = [];
  readonly heads: Record<string, { srcSeq: number; hash: string; seq: number }> = {};
  events = 0;
  private expect: number;
  private ring: KeyRing;
  /** srcSeq → hash per source, only for positions an anchor names (to check them). */
  private wanted = new Map<string, { srcSeq: number; hash: string }>();
  private seenAnchorHeads = new Set<string>();

  /** `firstSeq`: where the replay starts (1 for a whole audit); `root`: the cluster root's key. */
  constructor(root: string, readonly firstSeq = 1, private anchor?: Anchor) {
    this.expect = firstSeq;
    this.ring = new KeyRing(root);
    for (const [src, h] of Object.entries(anchor?.heads ?? {})) this.wanted.set(src, h);
  }

  private add(kind: FindingKind, seq: number, detail: string, src?: string): void {
    this.findings.push({ kind, seq, detail, ...(src ? { src } : {}) });
  }

  /** The stream's state before the replay: a head that starts after firstSeq was deleted or purged. */
  head(streamFirstSeq: number, streamLastSeq: number): void {
    if (streamFirstSeq > this.firstSeq && this.firstSeq <= streamLastSeq + 1) {
      this.add('truncated', this.firstSeq, `the stream starts at #${streamFirstSeq}: #${this.firstSeq}..#${streamFirstSeq - 1} are gone (purged or deleted)`);
      this.expect = streamFirstSeq;
    }
    if (this.anchor && this.anchor.lastSeq > streamLastSeq) {
      this.add('anchor', this.anchor.lastSeq, `the anchor of ${new Date(this.anchor.ts).toISOString()} saw the stream up to #${this.anchor.lastSeq}, it now ends at #${streamLastSeq} (truncated, or deleted and recreated)`);
    }
  }

  /**
   * The live stream after the archived part (retention, shared/archive.ts): it must go on
   * where the archive ended. Positions neither archived nor in the stream were purged or
   * deleted without being archived. Returns the position to read the stream from.
   */
  resume(streamFirstSeq: number, streamLastSeq: number): number {
    if (streamFirstSeq > this.expect && this.expect <= streamLastSeq) {
      this.add('truncated', this.expect, `#${this.expect}..#${streamFirstSeq - 1} are neither in the archive nor in the stream (purged or deleted without archiving)`);
      this.expect = streamFirstSeq;
    }
    if (this.anchor && this.anchor.lastSeq > streamLastSeq) {
      this.add('anchor', this.anchor.lastSeq, `the anchor of ${new Date(this.anchor.ts).toISOString()} saw the stream up to #${this.anchor.lastSeq}, it now ends at #${streamLastSeq} (truncated, or deleted and recreated)`);
    }
    return Math.max(this.expect, streamFirstSeq);
  }

  /** A key registration carried by an archive segment (root-signed, so it needs no event): for `--since`. */
  learnKey(src: string, key: string, rootSig: string): void {
    if (verifySig(this.ring.root, registration(src, key), rootSig)) this.ring.keys[src] = key;
  }

  /** A key registration before the audited range (`--since`): learnt, not audited. */
  learn(e: AnyEvent, bytes: Uint8Array, sig: string | undefined): void {
    if (e.type === 'KeyRegistered') this.ring.check(e, bytes, sig);
  }

  /** An undecodable message at `seq`. */
  junk(seq: number, subject: string, why: string): void {
    this.gap(seq);
    this.add('undecodable', seq, `${subject}: ${why}`);
  }

  /** One decoded event as stored: its subject, wire bytes, hash and signature header. */
  event(seq: number, subject: string, e: AnyEvent, bytes: Uint8Array, hash: string, sig: string | undefined): void {
    this.gap(seq);
    this.events++;
    const writer = nodeWrites(subject, e.src) ? e.src : writerOf(subject);
    if (writer !== e.src) {
      this.add('forged', seq, `${e.type} on ${subject} claims ${e.src}; only ${writer ?? 'nobody'} writes there`, e.src);
      return;
    }
    if (e.src !== 'controller' && DESIRED.has(e.type)) {
      this.add('forged', seq, `desired event ${e.type} from ${e.src}`, e.src);
      return;
    }
    if (e.type === 'KeyRegistered' && keySubjectToken(e.src) !== subject.split('.')[2]) {
      this.add('forged', seq, `key registration of ${e.src} on ${subject}`, e.src);
      return;
    }
    // A run of a source's linked events (each names the one before it), signed or not, is
    // vouched for by its last signature (it signs `prev`, a burst signature the hash of its
    // carrier, which names `prev`), so such runs are checked by one signature: ed25519
    // verification (~120 us here) would otherwise bound the audit. The run's unsigned events
    // after that one must be in the list of its burst (shared/signing.ts). A run whose last
    // signature fails, or that has none, is checked event by event. A run may start anywhere
    // (after a lost write, the rest of a burst whose signed first event was lost is vouched for
    // by the writer's next signature): its first event's link is checked against the head.
    const it = { seq, e, bytes, hash, sig };
    let p = this.pending.get(e.src);
    if (!p) this.pending.set(e.src, (p = { items: [] }));
    const tail = p.items.length ? p.items[p.items.length - 1]! : undefined;
    if (e.type !== 'KeyRegistered' && tail && e.srcSeq === tail.e.srcSeq + 1 && e.prev === tail.hash) {
      p.items.push(it);
      if (p.items.length >= RUN) this.flush(e.src, true);
      return;
    }
    this.flush(e.src);
    if (e.type === 'KeyRegistered') this.strict(it);
    else p.items.push(it);
  }

  private pending = new Map<string, { items: Item[] }>();

  /**
   * Verifies a source's run by its last signature (the unsigned events after it by its burst's list); if that fails, event by event.
   * `goesOn`: the run is cut only for its length (RUN): the unsigned events after its last signature
   * (a burst's rest, BURST_MAX at most) then start the next run, vouched for by that run's signature
   * through their links as any unsigned event before a signature is, or checked one by one when that
   * run is (checked on their own at each cut, they were 3% of an audit's events and a third of the
   * Auditor's CPU).
   */
  private flush(src: string, goesOn = false): void {
    const p = this.pending.get(src);
    if (!p || p.items.length === 0) return;
    const items = p.items;
    p.items = [];
    const key = Object.hasOwn(this.ring.keys, src) ? this.ring.keys[src] : undefined;
    let l = items.length - 1;
    while (l >= 0 && !items[l]!.sig) l--;
    const last = l >= 0 ? items[l]! : undefined;
    const later = key && last ? verifyEventSig(key, last.bytes, last.hash, last.sig) : undefined;
    if (later === undefined) { for (const it of items) this.strict(it); return; }
    this.ring.signed(src, later);
    this.link(items[0]!);
    for (let k = 0; k <= l; k++) this.accept(items[k]!.seq, items[k]!.e, items[k]!.hash);
    if (goesOn && items.length - 1 - l <= BURST_MAX) { p.items = items.slice(l + 1); return; }
    for (let k = l + 1; k < items.length; k++) this.strict(items[k]!);
  }

  /** One event checked on its own: its signature, then its link. */
  private strict(it: Item): void {
    const { seq, e } = it;
    const problem = this.ring.check(e, it.bytes, it.sig, it.hash);
    if (problem) {
      // bytes that do not verify under the source's key: written by someone else, or edited since
      this.add('forged', seq, `${e.type} ${e.src}#${e.srcSeq}: ${problem}${problem.startsWith('bad signature') ? ' (forged, or modified after signing)' : ''}`, e.src);
      return;
    }
    this.link(it);
    this.accept(seq, e, it.hash);
  }

  /** An authentic event's place in its chain: after the head, naming it. */
  private link({ seq, e }: Item): void {
    const h = this.heads[e.src];
    if (h) {
      if (e.srcSeq <= h.srcSeq) this.add('reordered', seq, `${e.src}#${e.srcSeq} after ${e.src}#${h.srcSeq} (#${h.seq})`, e.src);
      else if (e.srcSeq > h.srcSeq + 1) this.add('lost', seq, `${e.src}#${h.srcSeq + 1}..#${e.srcSeq - 1} missing before this event`, e.src);
      else if (e.prev !== h.hash) this.add('modified', seq, `${e.src}#${e.srcSeq} names a predecessor that is not ${e.src}#${h.srcSeq} as stored at #${h.seq} (that one was modified)`, e.src);
    } else if (this.firstSeq === 1 && e.srcSeq !== 1) {
      this.add('lost', seq, `${e.src}'s first event in the log is #${e.srcSeq} of its chain: #1..#${e.srcSeq - 1} are gone`, e.src);
    }
  }

  private accept(seq: number, e: AnyEvent, hash: string): void {
    const h = this.heads[e.src];
    // moved in place: not a new head object (garbage) for every event
    if (!h) this.heads[e.src] = { srcSeq: e.srcSeq, hash, seq };
    else if (e.srcSeq > h.srcSeq) { h.srcSeq = e.srcSeq; h.hash = hash; h.seq = seq; }
    if (this.wanted.size === 0) return;
    const w = this.wanted.get(e.src);
    if (w && w.srcSeq === e.srcSeq) {
      this.seenAnchorHeads.add(e.src);
      if (w.hash !== hash) this.add('modified', seq, `${e.src}#${e.srcSeq} is not the event the anchor recorded`, e.src);
    }
  }

  /** After the last message: the stream must reach its last sequence and every anchored head. */
  end(streamLastSeq: number): Finding[] {
    for (const src of [...this.pending.keys()]) this.flush(src);
    if (this.expect <= streamLastSeq) this.add('deleted', this.expect, `#${this.expect}..#${streamLastSeq} missing at the end`);
    if (this.anchor && this.firstSeq === 1) {
      for (const [src, w] of this.wanted) {
        if (!this.seenAnchorHeads.has(src)) this.add('anchor', this.anchor.lastSeq, `${src}#${w.srcSeq} (in the anchor) is not in the log`, src);
      }
    }
    this.findings.sort((a, b) => a.seq - b.seq);
    return this.findings;
  }

  private gap(seq: number): void {
    if (seq > this.expect) this.add('deleted', this.expect, seq - this.expect === 1 ? `#${this.expect} deleted` : `#${this.expect}..#${seq - 1} deleted`);
    this.expect = Math.max(this.expect, seq + 1);
  }
}
