// The log's anchor: the controller's signed record of the stream's last sequence and every
// source's chain head, kept outside the stream (a KV bucket, i.e. a second stream), so a
// purged, truncated or recreated EVENTS stream cannot look like an intact empty log.
// It carries the controller's key registration, so it verifies with the root key alone.
import { StorageType, type NatsConnection } from 'nats';
import type { Anchor } from '../audit.js';
import { verifySig, registration, type Signer } from '../signing.js';

export const ANCHOR_BUCKET = 'swarmlite-anchor';
const KEY = 'head';

interface Stored { anchor: Anchor; sig: string; reg: { key: string; rootSig: string } }

const bytesOf = (a: Anchor): Uint8Array => Buffer.from(`swarmlite-anchor-v1\n${JSON.stringify(a)}`);

/** The controller's side: sign and put. */
export async function writeAnchor(nc: NatsConnection, a: Anchor, signer: Signer, reg: { key: string; rootSig: string }, replicas = 1): Promise<void> {
  const kv = await nc.jetstream().views.kv(ANCHOR_BUCKET, { history: 1, storage: StorageType.File, replicas });
  const v: Stored = { anchor: a, sig: signer.sign(bytesOf(a)), reg };
  await kv.put(KEY, Buffer.from(JSON.stringify(v)));
}

/** The auditor's side: the anchor if there is one and it verifies, a string saying what is wrong if not. */
export async function readAnchor(nc: NatsConnection, root: string): Promise<Anchor | string | undefined> {
  let e;
  try {
    const kv = await nc.jetstream().views.kv(ANCHOR_BUCKET, { bindOnly: true });
    e = await kv.get(KEY);
  } catch { return undefined; }
  if (!e || e.operation !== 'PUT') return e ? `the anchor was ${e.operation === 'DEL' ? 'deleted' : 'purged'}` : undefined;
  let v: Stored;
  try { v = JSON.parse(Buffer.from(e.value).toString()) as Stored; } catch { return 'the anchor is not JSON'; }
  if (!v?.anchor || !verifySig(root, registration('controller', v.reg?.key ?? ''), v.reg?.rootSig)) return 'the anchor\'s key is not the controller\'s (root signature)';
  if (!verifySig(v.reg.key, bytesOf(v.anchor), v.sig)) return 'the anchor\'s signature does not verify';
  return v.anchor;
}

