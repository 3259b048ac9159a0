// An in-memory event log for unit tests: every writer has its own hash chain, every append
// goes through the real codec (encode, then decode) and the real reducer.
import { SourceChain, decodeEvent } from '../../shared/codec.js';
import { emptyView, reduce, type ClusterView } from '../../shared/reducer.js';
import type { EventData, EventType, StoredEvent } from '../../shared/events.js';

export class MemLog {
  readonly view: ClusterView = emptyView();
  readonly events: (StoredEvent & { subject: string })[] = [];
  private chains: Record<string, SourceChain> = {};

  append<T extends EventType>(src: string, subject: string, type: T, entity: string, data: EventData[T], cause?: string): { seq: number; id: string } {
    const c = (this.chains[src] ??= new SourceChain(src));
    const { event, bytes, hash } = c.next(type, entity, data, cause);
    c.commit(event.srcSeq, hash);
    const stored = { seq: this.events.length + 1, hash, event: decodeEvent(bytes), subject };
    this.events.push(stored);
    reduce(this.view, stored);
    return { seq: stored.seq, id: event.id };
  }

  /** A node joins, as its agent would announce it. */
  join(node: string, cpus = 2, memory = 4 * 1024 ** 3): void {
    this.append(`node:${node}`, `ev.node.${node}`, 'NodeJoined', node, { hostname: node, cpus, memory, kernel: '6.1', features: [], version: 't' });
  }
}
