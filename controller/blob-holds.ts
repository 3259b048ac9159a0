// Pulls' and loads' holds on image-store blobs (the image.hold verb, controller/api/images.ts).
// A pull looks at the store, finds a layer there and does not put it; until its import names
// the layer, nothing in the view uses it, so an image rm, a fill's word or image.gc of another
// image that shares it could delete it and the import would be refused. A hold keeps such
// blobs from those three until the import that ends it, an explicit release or its expiry.
// In memory, per controller: a takeover forgets them (an import then refused is pulled again),
// which costs less than a log event per pull for a window of seconds.
import { randomBytes } from 'node:crypto';

/** Live holds at once: beyond this a hold is refused (one caller must not grow the controller without end). */
export const MAX_HOLDS = 4096;

export class HoldLimitError extends Error {}

export class BlobHolds {
  private holds = new Map<string, { blobs: Set<string>; until: number }>();

  constructor(private readonly ttlMs: number) {}

  /** A new hold on `blobs` until `now` + the ttl; its token. */
  hold(blobs: readonly string[], now: number): string {
    this.expire(now);
    if (this.holds.size >= MAX_HOLDS) throw new HoldLimitError(`${MAX_HOLDS} holds on image blobs are live: try again when a pull has ended`);
    const token = randomBytes(12).toString('hex');
    this.holds.set(token, { blobs: new Set(blobs), until: now + this.ttlMs });
    return token;
  }

  /** Ends hold `token` (unknown or expired: nothing to do, e.g. after a takeover). */
  release(token: string): void {
    this.holds.delete(token);
  }

  /** Whether a live hold names `blob`. */
  has(blob: string, now: number): boolean {
    for (const h of this.holds.values()) if (h.until > now && h.blobs.has(blob)) return true;
    return false;
  }

  private expire(now: number): void {
    for (const [t, h] of this.holds) if (h.until <= now) this.holds.delete(t);
  }
}
