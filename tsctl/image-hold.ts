// The client's side of image.hold, for a pull and a load alike: what they find in the object
// store stays there until the import that names it is recorded, whatever image rm, a fill's
// word or gc runs meanwhile (the controller takes the hold in their queue, after any under way).
import type { NatsConnection } from 'nats';
import { api } from './client.js';
import { controllerApi } from '../shared/api/controller.js';
import type { Verb } from '../shared/rpc.js';

type ImportRequest = typeof controllerApi.imageImport extends Verb<infer Req, unknown> ? Req : never;

/**
 * Holds `blobs`, runs `fill` (which puts what the store lacks and says what to record), then
 * records the image with the hold, which the import consumes. A fill or an import that fails
 * lets the hold go at once: else it would keep the blobs for its hour.
 */
export async function importHeld(nc: NatsConnection, blobs: string[], user: string, fill: () => Promise<Omit<ImportRequest, 'hold' | 'user'>>): Promise<void> {
  let { hold } = await api(nc, controllerApi.imageHold, { blobs: [...new Set(blobs)], user });
  try {
    const req = await fill();
    await api(nc, controllerApi.imageImport, { ...req, user, ...(hold ? { hold } : {}) });
    hold = undefined;
  } finally {
    if (hold) await api(nc, controllerApi.imageHold, { release: hold, user }).catch(() => undefined);
  }
}
