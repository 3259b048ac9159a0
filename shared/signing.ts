// Signed events. Each source signs its event's wire bytes (the bytes its hash chain hashes)
// with ed25519; the signature travels in the message header `Swl-Sig`, so the event, its
// hash and its chain stay what they were. Which key may sign for a source is said by a
// `KeyRegistered` event (on ev.keys.<identity>) carrying the cluster root's signature over
// (source, key); the registration is itself signed by the key it registers.
// Pure but for node:crypto (no I/O): readers keep a KeyRing, writers a Signer.
import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
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
  check(e: AnyEvent, bytes: Uint8Array, sig: string | undefined): string | undefined {
    if (!sig) return 'unsigned';
    if (e.type === 'KeyRegistered') {
      if (!verifySig(this.root, registration(e.src, e.data.key), e.data.rootSig)) return `key registration for ${e.src} not signed by the cluster root`;
      if (!verifySig(e.data.key, bytes, sig)) return 'registration not signed by the key it registers';
      this.keys[e.src] = e.data.key;
      return undefined;
    }
    const key = Object.hasOwn(this.keys, e.src) ? this.keys[e.src] : undefined;
    if (!key) return `no key registered for ${e.src}`;
    return verifySig(key, bytes, sig) ? undefined : `bad signature for ${e.src}`;
  }
}
