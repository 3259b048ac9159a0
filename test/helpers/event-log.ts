// An in-memory log for fold tests: events appended per source with real hash chains.
import { SourceChain } from '../../shared/codec.js';
import type { EventData, EventType, StoredEvent } from '../../shared/events.js';

export function eventLog() {
  const chains: Record<string, SourceChain> = {};
  const events: StoredEvent[] = [];
  const add = <T extends EventType>(src: string, type: T, entity: string, data: EventData[T]) => {
    const c = (chains[src] ??= new SourceChain(src));
    const { event, hash } = c.next(type, entity, data);
    c.commit(event.srcSeq, hash);
    events.push({ seq: events.length + 1, hash, event } as StoredEvent);
    return event;
  };
  return { events, add };
}
