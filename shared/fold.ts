// The fold with signatures: what the controller and `tsctl view --at` run over the stream.
// An event is folded only if its source's registered key signed it (KeyRing); a refused one
// is recorded (refuse) and its position passed. Checking every signature costs ~120 us an
// event, ten times the rest of a replay, so a replay holds a batch and checks each source's
// linked run by its last signature: every signature signs `prev`, the hash of the source's
// event before, so one good signature vouches for the unbroken chain behind it (the audit's
// argument, shared/audit.ts). A run whose last signature fails is checked event by event. Key
// registrations are checked on their own, in order (they change what the keys are).
// Pure (node:crypto only).
import type { StoredEvent } from './events.js';
import { reduce, refuse, type ClusterView } from './reducer.js';
import { verifyEventSig, type KeyRing } from './signing.js';

/** Events a batch holds at most before it is checked and folded. */
export const BATCH = 4096;

export class CheckedFold {
  private held: StoredEvent[] = [];
  /** Events folded, events refused by a signature check. */
  folded = 0;
  refused = 0;

  /** `ring`: absent, every event is folded as written (tests, a reader without the root key). */
  constructor(readonly view: ClusterView, private ring?: KeyRing, private onRefuse?: (s: StoredEvent, problem: string) => void) {}

  /** Folds `s` now (checked on its own), or with `hold` keeps it for the batch (folded by flush, or when the batch is full). */
  add(s: StoredEvent, hold = false): void {
    if (!this.ring) { this.apply(s, undefined); return; }
    if (s.event.type === 'KeyRegistered' || !hold) {
      this.flush();
      this.apply(s, this.ring.check(s.event, s.bytes!, s.sig, s.hash));
      return;
    }
    this.held.push(s);
    if (this.held.length >= BATCH) this.flush();
  }

  /**
   * Folds `s` as checked elsewhere (`problem` what that check found): a reader thread that
   * runs this same fold's checks over the same events in the same order (replay-reader.ts).
   */
  put(s: StoredEvent, problem: string | undefined): void {
    this.flush();
    this.apply(s, problem);
  }

  /** What a check elsewhere needs to start where this fold is: the root and the keys (a copy). */
  checks(): { root: string; keys: Record<string, string> } | undefined {
    return this.ring ? { root: this.ring.root, keys: { ...this.ring.keys } } : undefined;
  }

  /** The keys (and the burst lists beside them) as a check elsewhere left them after the events put so far. */
  keysAre(keys: Record<string, string>): void {
    if (!this.ring) return;
    const mine = this.ring.keys;
    for (const k of Object.keys(mine)) if (!Object.hasOwn(keys, k)) delete mine[k];
    Object.assign(mine, keys);
  }

  /** Checks and folds everything held, in stream order. */
  flush(): void {
    const items = this.held;
    if (items.length === 0) return;
    this.held = [];
    const problems = this.check(items);
    for (let i = 0; i < items.length; i++) this.apply(items[i]!, problems[i]);
  }

  /** Folds or refuses one checked event (a thread that only checks overrides it to record the verdict). */
  protected apply(s: StoredEvent, problem: string | undefined): void {
    if (problem) {
      this.refused += 1;
      refuse(this.view, s, problem);
      this.onRefuse?.(s, problem);
    } else {
      this.folded += 1;
      reduce(this.view, s);
    }
  }

  /**
   * Each item's problem (undefined: signed by its source's key). A source's linked run, signed
   * events or not, is vouched for by its last signature if that verifies (it signs `prev`, and
   * a burst signature the hash of its carrier, which names `prev`); the run's events after that
   * one are unsigned members of its burst, each checked against the list the signature carries
   * (KeyRing.vouched). A run whose last signature fails, or with none, is checked event by event.
   */
  private check(items: StoredEvent[]): (string | undefined)[] {
    const ring = this.ring!;
    const problems: (string | undefined)[] = new Array(items.length);
    // per source: the open run (indices into items) and the hash/srcSeq its next event must name
    const runs = new Map<string, { idx: number[]; srcSeq: number; hash: string }>();
    const one = (i: number) => { const s = items[i]!; problems[i] = ring.check(s.event, s.bytes!, s.sig, s.hash); };
    const close = (src: string) => {
      const r = runs.get(src);
      if (!r || r.idx.length === 0) return;
      const key = Object.hasOwn(ring.keys, src) ? ring.keys[src] : undefined;
      let l = r.idx.length - 1;
      while (l >= 0 && !items[r.idx[l]!]!.sig) l--;
      const last = l >= 0 ? items[r.idx[l]!]! : undefined;
      const later = key && last ? verifyEventSig(key, last.bytes!, last.hash, last.sig) : undefined;
      if (later === undefined) { for (const i of r.idx) one(i); return; }
      ring.signed(src, later);
      for (let k = l + 1; k < r.idx.length; k++) one(r.idx[k]!);
    };
    for (let i = 0; i < items.length; i++) {
      const s = items[i]!, e = s.event;
      let r = runs.get(e.src);
      const linked = r !== undefined && r.idx.length > 0 && e.srcSeq === r.srcSeq + 1 && e.prev === r.hash;
      if (!linked) {
        close(e.src);
        if (!r) runs.set(e.src, (r = { idx: [], srcSeq: 0, hash: '' }));
        r.idx = [];
      }
      r!.idx.push(i); r!.srcSeq = e.srcSeq; r!.hash = s.hash;
    }
    for (const src of runs.keys()) close(src);
    return problems;
  }
}
