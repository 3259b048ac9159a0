// Signed logs as the Appender writes them, for the auditor's and the checked fold's unit
// tests: each source's events go out in bursts, the first of a burst signed over the hashes of
// all of them (shared/signing.ts signBurst), the rest unsigned; plus the forgeries an attacker
// with server-side privileges can store (unsigned events, foreign keys, edited bytes).
import { createHash, randomBytes, sign as edSign } from 'node:crypto';
import { SourceChain, decodeEvent } from '../../shared/codec.js';
import { keyOf, registration, signBurst, signer, type Signer } from '../../shared/signing.js';
import type { EventData, EventType, StoredEvent } from '../../shared/events.js';

export const rootKey = keyOf(randomBytes(32));
export const regOf = (src: string, pub: string) => edSign(null, registration(src, pub), rootKey.priv).toString('base64');

/** One stored message of a log made here (`subject` always set, `bytes` always set). */
export type Msg = StoredEvent & { subject: string; bytes: Uint8Array };

export interface Stamp { subject: string; bytes: Uint8Array; hash: string }

export class Source {
  readonly s: Signer;
  readonly chain: SourceChain;
  constructor(readonly src: string, key: Signer = signer(randomBytes(32))) { this.s = key; this.chain = new SourceChain(src); }

  stamp<T extends EventType>(subject: string, type: T, entity: string, data: EventData[T]): Stamp {
    const { event, bytes, hash } = this.chain.next(type, entity, data);
    this.chain.commit(event.srcSeq, hash);
    return { subject, bytes, hash };
  }

  /** Its key registration, signed alone. */
  register(): Stamp & { sig: string } {
    const tok = this.src.replace(/^node:/, 'node-');
    const st = this.stamp(`ev.keys.${tok}`, 'KeyRegistered', this.src.replace(/^node:/, ''), { key: this.s.pub, rootSig: regOf(this.src, this.s.pub) });
    return { ...st, sig: this.s.sign(st.bytes) };
  }

  /** `n` state events (node sources) or controller events, as one burst: the first carries the signature over all. */
  burst(n: number, by: Signer = this.s): (Stamp & { sig?: string })[] {
    const node = this.src.replace(/^node:/, '');
    const out: (Stamp & { sig?: string })[] = [];
    for (let i = 0; i < n; i++) {
      const id = randomBytes(32).toString('hex');
      out.push(this.src === 'controller'
        ? this.stamp(`ev.image.${id}`, 'ImageRemoved', id, { name: 'busybox', digest: `sha256:${id}`, user: 'u' })
        : this.stamp(`ev.state.${node}.${id}`, 'ContainerRemoved', id, { reason: `r${i}` }));
    }
    out[0] = { ...out[0]!, sig: n === 1 ? by.sign(out[0]!.bytes) : signBurst(by, out.map((x) => x.hash)) };
    return out;
  }
}

/** Numbers stamped messages as stored, in the order given. */
export function store(list: (Stamp & { sig?: string })[]): Msg[] {
  return list.map((m, i) => ({ seq: i + 1, subject: m.subject, bytes: m.bytes, hash: m.hash, event: decodeEvent(m.bytes), ...(m.sig ? { sig: m.sig } : {}) }));
}

/** A writer started again after a crash: its chain goes on from the last event the stream holds. */
export function restart(x: Source, last: Stamp): Source {
  const e = decodeEvent(last.bytes);
  const y = new Source(x.src, x.s);
  (y as { chain: SourceChain }).chain = new SourceChain(x.src, e.srcSeq, last.hash);
  return y;
}

/** `a`'s and `b`'s messages merged, one of each in turn (two writers publishing at once). */
const zip = <T>(a: T[], b: T[]): T[] => Array.from({ length: Math.max(a.length, b.length) }, (_, i) => [a[i], b[i]]).flat().filter((x): x is T => x !== undefined);

export interface Scenario { name: string; msgs: Msg[]; /** positions a reader must refuse (the auditor: report), and only those */ bad: number[] }

/**
 * A genuine bursty log, then each attack a server-side attacker can make on it, with the
 * positions that must be refused. Also a writer killed mid-burst (a prefix of its burst stored)
 * and started again: nothing to refuse.
 */
export function scenarios(): Scenario[] {
  const out: Scenario[] = [];
  const base = () => {
    const ctl = new Source('controller'), n1 = new Source('node:n1'), n2 = new Source('node:n2');
    const list: (Stamp & { sig?: string })[] = [ctl.register(), n1.register(), n2.register()];
    list.push(...zip(n1.burst(5), n2.burst(3)), ...ctl.burst(4), ...n1.burst(1), ...zip(n1.burst(7), ctl.burst(2)));
    return { ctl, n1, n2, list };
  };
  const mallory = signer(randomBytes(32));
  /** A source that links to n1's head but signs with another key (or not at all). */
  const fake = (n1: Source) => { const m = new Source('node:n1', mallory); (m as { chain: SourceChain }).chain = new SourceChain('node:n1', n1.chain.position.srcSeq, n1.chain.position.hash); return m; };
  {
    const { list } = base();
    out.push({ name: 'genuine bursts, two writers interleaved', msgs: store(list), bad: [] });
  }
  {
    const { n1, list } = base();
    const b = n1.burst(6);
    list.push(...b.slice(0, 3)); // killed: the rest of its burst never left
    const again = restart(n1, b[2]!);
    list.push(...again.burst(4), ...again.burst(1));
    out.push({ name: 'a writer killed mid-burst (a prefix stored) and started again', msgs: store(list), bad: [] });
  }
  {
    const { n1, list } = base();
    const at = list.length + 1;
    list.push(fake(n1).stamp('ev.state.n1.' + 'e'.repeat(64), 'ContainerRemoved', 'e'.repeat(64), { reason: 'injected' }));
    list.push(...n1.burst(3));
    out.push({ name: 'an unsigned event injected between signed ones of a source', msgs: store(list), bad: [at] });
  }
  {
    const { n1, list } = base();
    const b = n1.burst(5);
    list.push(...b.slice(0, 2));
    const at = list.length + 1;
    // linked to the stored head, so only the burst's list tells it apart
    const m = new Source('node:n1', mallory);
    const head = decodeEvent(b[1]!.bytes);
    (m as { chain: SourceChain }).chain = new SourceChain('node:n1', head.srcSeq, b[1]!.hash);
    list.push(m.stamp('ev.state.n1.' + 'e'.repeat(64), 'ContainerRemoved', 'e'.repeat(64), { reason: 'injected' }));
    list.push(...b.slice(2));
    out.push({ name: 'an unsigned event injected inside a burst', msgs: store(list), bad: [at] });
  }
  {
    const { n1, list } = base();
    const m = fake(n1);
    const at = list.length + 1;
    list.push(...m.burst(3).map(({ sig: _s, ...x }) => x), ...m.burst(1));
    out.push({ name: 'an unsigned tail with a forged later signed event', msgs: store(list), bad: [at, at + 1, at + 2, at + 3] });
  }
  {
    const { n1, list } = base();
    const at = list.length + 1;
    list.push(...fake(n1).burst(4));
    out.push({ name: 'a burst signed by a key that is not the source\'s', msgs: store(list), bad: [at, at + 1, at + 2, at + 3] });
  }
  {
    const { n1, list } = base();
    const b = n1.burst(6);
    const at = list.length + 3;
    const edited = new Uint8Array(b[2]!.bytes);
    const i = Buffer.from(edited).lastIndexOf('r2'); // the reason "r2"
    edited[i + 1] = '7'.charCodeAt(0);
    b[2] = { ...b[2]!, bytes: edited, hash: createHash('sha256').update(edited).digest('hex') };
    list.push(...b, ...n1.burst(2));
    out.push({ name: 'a valid signature over a chain whose middle was modified', msgs: store(list), bad: [at] });
  }
  {
    const { n1, list } = base();
    const b = n1.burst(4);
    const [sig, later] = b[0]!.sig!.split(':') as [string, string];
    b[0] = { ...b[0]!, sig: `${sig}:${Buffer.from(later, 'base64').subarray(0, 64).toString('base64')}` }; // the list cut to two
    const at = list.length + 1;
    list.push(...b);
    out.push({ name: 'a burst whose list was edited (at the end of the log)', msgs: store(list), bad: [at, at + 1, at + 2, at + 3] });
  }
  {
    const { n1, list } = base();
    const b = n1.burst(3);
    list.push(...b);
    const at = list.length + 1;
    list.push({ ...b[1]!, sig: undefined } as Stamp);
    out.push({ name: 'a burst member stored again later', msgs: store(list), bad: [at] });
  }
  return out;
}
