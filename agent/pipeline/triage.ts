// Pure: what to do with one message on this node's desired subjects, before anything acts.
// Undecodable, forged, misaddressed and replayed messages are told apart here.
import type { DesiredEvent, StoredEvent } from '../../shared/events.js';
import { DESIRED_TYPES } from '../../shared/events.js';
import { decodeEvent, hashBytes, DecodeError } from '../../shared/codec.js';
import { ENTITY_RE, EVENT_ID_RE } from '../../shared/ids.js';
import type { ContainerRecord } from './checkpoint.js';
import { rejectKey } from './outcome.js';

export interface Delivery { subject: string; seq: number; data: Uint8Array }

export type Triage =
  | { kind: 'replay' }
  | { kind: 'reject'; entity: string; reason: string; id?: string; type?: string }
  | { kind: 'network'; stored: StoredEvent & { event: Extract<DesiredEvent, { type: 'NetworkCreateRequested' | 'NetworkRemoveRequested' }> } }
  | { kind: 'container'; stored: StoredEvent & { event: Exclude<DesiredEvent, { type: 'NetworkCreateRequested' | 'NetworkRemoveRequested' }> } };

export interface TriageMemory {
  seen(key: string): number;
  get(id: string): ContainerRecord | undefined;
}

/** The entity a rejection is filed under when the rejected one is not a valid entity (it must decode). */
export const INVALID_ENTITY = 'invalid-entity';

export const subjectToken = (subject: string) => subject.split('.').pop() ?? '_';

/** The rejection quotes only what decodes again: a bad entity, id or type is left out. */
export function rejection(entity: string, reason: string, partial?: { id?: string; type?: string }): Extract<Triage, { kind: 'reject' }> {
  return {
    kind: 'reject', entity: ENTITY_RE.test(entity) ? entity : INVALID_ENTITY, reason: reason.slice(0, 4000),
    ...(partial?.id && EVENT_ID_RE.test(partial.id) && partial.id.length <= 64 ? { id: partial.id } : {}),
    ...(partial?.type && /^[A-Za-z]{1,64}$/.test(partial.type) ? { type: partial.type } : {}),
  };
}

export function triage(d: Delivery, mem: TriageMemory): Triage {
  const token = subjectToken(d.subject);
  if (d.seq <= mem.seen(rejectKey(token))) return { kind: 'replay' }; // rejected before
  let e;
  try {
    e = decodeEvent(d.data);
  } catch (err) {
    const de = err as DecodeError;
    return rejection(de.partial?.entity ?? token, de.message, de.partial);
  }
  if (!(DESIRED_TYPES as readonly string[]).includes(e.type)) return rejection(e.entity, `${e.type} is not a desired event`, e);
  if (e.src !== 'controller') return rejection(e.entity, `desired events come from the controller, not ${e.src}`, e);
  if (e.entity !== token) return rejection(token, `entity ${e.entity} does not match subject ${d.subject}`, e);
  const stored = { seq: d.seq, hash: hashBytes(d.data), event: e as DesiredEvent };
  if (e.type === 'NetworkCreateRequested' || e.type === 'NetworkRemoveRequested') {
    if (d.seq <= mem.seen(e.entity)) return { kind: 'replay' };
    return { kind: 'network', stored: stored as Extract<Triage, { kind: 'network' }>['stored'] };
  }
  const rec = mem.get(e.entity);
  if (rec && d.seq <= rec.lastSeq) return { kind: 'replay' }; // already applied
  return { kind: 'container', stored: stored as Extract<Triage, { kind: 'container' }>['stored'] };
}
