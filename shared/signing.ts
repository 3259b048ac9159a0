// Signed events. Each source signs its event's wire bytes (the bytes its hash chain hashes)
// with ed25519; the signature travels in the message header `Swl-Sig`, so the event, its
// hash and its chain stay what they were. Which key may sign for a source is said by a
// `KeyRegistered` event (on ev.keys.<identity>) carrying the cluster root's signature over
// (source, key); the registration is itself signed by the key it registers.
// Pure but for node:crypto (no I/O): readers keep a KeyRing, writers a Signer.
import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import type { AnyEvent } from './events.js';

export const SIG_HEADER = 'Swl-Sig';

const PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');

/** The ed25519 key of a 32-byte seed, and its public half as hex. */
export function keyOf(seed: Uint8Array): { priv: KeyObject; pub: string } {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8, seed]), format: 'der', type: 'pkcs8' });
  const der = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return { priv, pub: der.subarray(SPKI.length).toString('hex') };
}

export interface Signer { pub: string; sign(bytes: Uint8Array): string }

export function signer(seed: Uint8Array): Signer {
  const { priv, pub } = keyOf(seed);
  return { pub, sign: (bytes) => edSign(null, bytes, priv).toString('base64') };
}

/**
 * Burst signatures (signature amortisation): a writer that publishes several events of its
 * chain at once signs only the first, over the hashes of all of them in chain order, and the
 * header carries the later ones' hashes: `Swl-Sig: <sig>:<base64 of the later hashes, 32 bytes
 * each>`. A reader that verified it accepts each later event of that source whose hash is in
 * the list, as it arrives: nothing waits for a signature still to come, and a writer killed
 * mid-burst leaves a stored prefix that is vouched for. The signed bytes start with a prefix
 * no msgpack event can start with (an event is a map), so a burst signature is never a valid
 * signature of event bytes and the reverse.
 */
const BURST = Buffer.from('swarmlite-burst-v1\n');
/** Hashes one burst signature vouches for at most (a header of ~11 KB at 256). */
export const BURST_MAX = 256;

const burstMessage = (hashes: Buffer): Buffer => Buffer.concat([BURST, hashes]);

/** The Swl-Sig value for a burst: `hashes` (hex) are the burst's events in chain order, the first the carrier's. */
export function signBurst(s: Signer, hashes: string[]): string {
  const raw = Buffer.from(hashes.join(''), 'hex');
  return `${s.sign(burstMessage(raw))}:${raw.subarray(32).toString('base64')}`;
}

/**
 * Checks an event's Swl-Sig value under `key`: undefined when it does not verify, else the
 * hex hashes (concatenated) of the later events it vouches for ('' for a plain signature).
 */
export function verifyEventSig(key: string, bytes: Uint8Array, hash: string, header: string | undefined): string | undefined {
  if (!header) return undefined;
  const colon = header.indexOf(':');
  if (colon < 0) return verifySig(key, bytes, header) ? '' : undefined;
  const later = Buffer.from(header.slice(colon + 1), 'base64');
  if (later.length === 0 || later.length % 32 !== 0 || later.length > 32 * BURST_MAX) return undefined;
  const own = Buffer.from(hash, 'hex');
  if (own.length !== 32) return undefined;
  return verifySig(key, burstMessage(Buffer.concat([own, later])), header.slice(0, colon)) ? later.toString('hex') : undefined;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Where a KeyRing keeps the hashes a source's last burst signature still vouches for: beside its key (so a view snapshot carries them). */
const aheadOf = (src: string): string => `+${src}`;

/** What the root signs to bind a key to a source. */
export const registration = (src: string, pub: string): Uint8Array => Buffer.from(`swarmlite-key-v1\n${src}\n${pub}`);

const pubs = new Map<string, KeyObject>();
function pubKey(hex: string): KeyObject | undefined {
  let k = pubs.get(hex);
  if (k) return k;
  if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
  k = createPublicKey({ key: Buffer.concat([SPKI, Buffer.from(hex, 'hex')]), format: 'der', type: 'spki' });
  if (pubs.size > 10_000) pubs.clear();
  pubs.set(hex, k);
  return k;
}

export function verifySig(pub: string, bytes: Uint8Array, sig: string | undefined): boolean {
  if (!sig || sig.length > 200) return false;
  const k = pubKey(pub);
  if (!k) return false;
  try { return edVerify(null, bytes, k, Buffer.from(sig, 'base64')); } catch { return false; }
}

/** The header subject token of a source's registrations: `controller`, `node-<id>`. */
export const keySubjectToken = (src: string): string => src.replace(/^node:/, 'node-');

/**
 * Which key signs for which source, learnt in stream order from registrations the root
 * signed. `keys` is plain data (the controller keeps it in its view snapshot).
 */
export class KeyRing {
  constructor(readonly root: string, readonly keys: Record<string, string> = {}) {}

  /**
   * undefined when the event is signed by its source's registered key (a registration:
   * by the key it registers, which the root vouches for), else what is wrong.
   */
  check(e: AnyEvent, bytes: Uint8Array, sig: string | undefined, hash?: string): string | undefined {
    if (!sig) return this.vouched(e.src, hash ?? sha256(bytes)) ? undefined : 'unsigned (and in no burst its source signed)';
    if (e.type === 'KeyRegistered') {
      if (!verifySig(this.root, registration(e.src, e.data.key), e.data.rootSig)) return `key registration for ${e.src} not signed by the cluster root`;
      if (!verifySig(e.data.key, bytes, sig)) return 'registration not signed by the key it registers';
      this.keys[e.src] = e.data.key;
      delete this.keys[aheadOf(e.src)];
      return undefined;
    }
    const key = Object.hasOwn(this.keys, e.src) ? this.keys[e.src] : undefined;
    if (!key) return `no key registered for ${e.src}`;
    const later = verifyEventSig(key, bytes, hash ?? sha256(bytes), sig);
    if (later === undefined) return `bad signature for ${e.src}`;
    this.signed(e.src, later);
    return undefined;
  }

  /** A good signature of `src` was seen: the later events it vouches for (hex hashes, '' for none) replace any earlier burst's. */
  signed(src: string, later: string): void {
    if (later) this.keys[aheadOf(src)] = later; else delete this.keys[aheadOf(src)];
  }

  /**
   * Whether an unsigned event of `src` with this hash is one its last burst signature listed;
   * if so, it and the ones listed before it are used up (a burst is stored in chain order).
   */
  vouched(src: string, hash: string): boolean {
    const k = aheadOf(src);
    const list = Object.hasOwn(this.keys, k) ? this.keys[k]! : '';
    let at = list.indexOf(hash);
    while (at > 0 && at % 64 !== 0) at = list.indexOf(hash, at + 1);
    if (at < 0) return false;
    if (at + 64 >= list.length) delete this.keys[k]; else this.keys[k] = list.slice(at + 64);
    return true;
  }
}
