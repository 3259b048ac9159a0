// At start, before anything else is appended: events that a written checkpoint change
// promised but the log does not have (the agent died between the write and the append) are
// appended now, with the ids chosen before, so each is reported exactly once.
import type { NatsConnection } from 'nats';
import { decodeEvent } from '../../shared/codec.js';
import { subjects } from '../../shared/subjects.js';
import { readRaw, withRetry, type Appender } from '../../shared/nats/log.js';
import type { Checkpoint } from './checkpoint.js';

export async function recoverPromised(nc: NatsConnection, log: Appender, checkpoint: Checkpoint, node: string): Promise<number> {
  let appended = 0;
  for (const [id, events] of checkpoint.pending()) {
    // a container's history on its subject is short: read it all, junk or not
    // read again whole if it could not be made (a server gone): an empty answer taken for the
    // truth would report every promised event a second time
    const present = await withRetry(async () => {
      const ids = new Set<string>();
      for await (const m of readRaw(nc, subjects.state(node, id))) {
        try { ids.add(decodeEvent(m.data).id); } catch { /* not ours to judge here */ }
      }
      return ids;
    }, 15);
    for (const e of events) {
      if (present.has(e.id)) continue;
      await log.append(subjects.state(node, e.entity), e.type, e.entity, e.data as never, e.cause, e.id);
      appended++;
    }
    checkpoint.kept(id);
  }
  checkpoint.flush();
  return appended;
}
