// How a layer is kept in the cluster's image store, under its diff_id (`sha256-<hex>`). Pure.
// - plain: the tar itself; the object's digest is the diff_id (verified when it was put).
//   `image load`, import, build and commit put these, and every pull before this form existed.
// - gzip: the registry's compressed blob as it arrived; the object's digest is the blob's
//   (checked against the manifest as it streamed in) and its metadata names that blob. `image
//   pull` keeps a gzip layer so: a pull is then the registry's bytes, hashed once, into the
//   store, as `skopeo copy` or containerd's fetch does, and the diff_id is checked where the
//   tar is next read (an agent's unpack, save, build), which all hash the tar anyway and
//   refuse a mismatch with nothing partial left.
// A gzip object is a claim (this blob unpacks to this diff_id) no one has checked yet: a
// pull may use it only for the same blob, and a verified tar (load, build, commit, or a pull
// of another blob, checked while it streams) replaces it.
export const LAYER_BLOB_KEY = 'swarmlite-layer-blob';
export const LAYER_ENCODING_KEY = 'swarmlite-layer-encoding';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export type LayerForm = { encoding: 'plain' } | { encoding: 'gzip'; blob: string };

/** What `info` (an ObjectStore.info of a layer's key) holds; a string says why it is not the layer `diffId`. */
export function layerForm(info: { digest: string; metadata?: Record<string, string> }, diffId: string): LayerForm | string {
  const stored = objectDigest(info.digest);
  const enc = info.metadata?.[LAYER_ENCODING_KEY];
  if (enc === undefined) return stored === diffId ? { encoding: 'plain' } : `its bytes hash to ${stored ?? 'an unknown digest'}, not ${diffId} (the store was edited)`;
  if (enc !== 'gzip') return `unknown layer encoding "${String(enc).slice(0, 40)}"`;
  const blob = info.metadata?.[LAYER_BLOB_KEY];
  if (typeof blob !== 'string' || !DIGEST.test(blob)) return 'a gzip layer without its blob digest';
  if (stored !== blob) return `its bytes hash to ${stored ?? 'an unknown digest'}, not the blob ${blob} it names`;
  return { encoding: 'gzip', blob };
}

/** The metadata of a layer kept as its compressed blob. */
export const gzipLayerMetadata = (blob: string): Record<string, string> => ({ [LAYER_ENCODING_KEY]: 'gzip', [LAYER_BLOB_KEY]: blob });

/** `SHA-256=<base64url, padded or not>` as `sha256:<hex>`; null when it is not that. */
export function objectDigest(d: string): string | null {
  if (!d.startsWith('SHA-256=')) return null;
  const b = Buffer.from(d.slice(8).replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
  return b.length === 32 ? `sha256:${b.toString('hex')}` : null;
}
