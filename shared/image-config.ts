// The parts of an OCI/docker image config the cluster relies on: its layer list. Pure, so
// tsctl (pull, load) and the controller (import) read a config the same way.
import { DIGEST_RE } from './ids.js';

/** An image config is small; a larger one is an attack on memory, not an image. */
export const MAX_CONFIG_BYTES = 8 << 20;

/** The diff_ids (uncompressed layer digests, bottom first) a config lists, or why it is not an image config. */
export function configLayers(bytes: Uint8Array): string[] | string {
  let c: unknown;
  try { c = JSON.parse(new TextDecoder().decode(bytes)); } catch { return 'the image config is not JSON'; }
  const rootfs = (c as { rootfs?: { type?: unknown; diff_ids?: unknown } } | null)?.rootfs;
  if (!rootfs || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) return 'the image config has no rootfs.diff_ids';
  if (!rootfs.diff_ids.length) return 'the image config lists no layers';
  if (!rootfs.diff_ids.every((d) => typeof d === 'string' && DIGEST_RE.test(d))) return 'the image config lists a layer that is not a sha256 digest';
  return rootfs.diff_ids as string[];
}
