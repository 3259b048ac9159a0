// Pure: what to do with one message on this node's desired subjects, before anything acts.
// Undecodable, forged, misaddressed and replayed messages are told apart here.
import type { AnyEvent, DesiredEvent, StoredEvent } from '../../shared/events.js';
import { DESIRED_TYPES } from '../../shared/events.js';
import { decodeEvent, hashBytes, DecodeError } from '../../shared/codec.js';
import { ENTITY_RE, EVENT_ID_RE } from '../../shared/ids.js';
import type { ContainerRecord } from './checkpoint.js';
import { rejectKey } from './outcome.js';

/** `sig`: the Swl-Sig header (shared/signing.ts). */
export interface Delivery { subject: string; seq: number; data: Uint8Array; sig?: string }

/** Checks an event's signature against its source's registered key: undefined when good, else what is wrong. */
export type SignatureCheck = (e: AnyEvent, bytes: Uint8Array, sig: string | undefined) => string | undefined;

export type Triage =
  | { kind: 'replay' }
  | { kind: 'reject'; entity: string; reason: string; id?: string; type?: string }
  | { kind: 'network'; stored: StoredEvent & { event: Extract<DesiredEvent, { type: NetworkType }> } }
  | { kind: 'volume'; stored: StoredEvent & { event: Extract<DesiredEvent, { type: VolumeType }> } }
  | { kind: 'container'; stored: StoredEvent & { event: Exclude<DesiredEvent, { type: NetworkType | VolumeType }> } };

type NetworkType = 'NetworkCreateRequested' | 'NetworkRemoveRequested';
type VolumeType = 'VolumeCreateRequested' | 'VolumeRemoveRequested';

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

/** A message as decoded and checked, before the agent's memory is consulted. */
export type Classified =
  | { kind: 'reject'; token: string; t: Extract<Triage, { kind: 'reject' }> }
  | { kind: 'network' | 'volume' | 'container'; stored: StoredEvent & { event: DesiredEvent } };

/** Pure and memoryless: decode and check a delivery. Done before grouping, so junk never opens a group of its own. */
export function classify(d: Delivery, signed?: SignatureCheck): Classified {
  const token = subjectToken(d.subject);
  const reject = (t: Extract<Triage, { kind: 'reject' }>): Classified => ({ kind: 'reject', token, t });
  let e;
  try {
    e = decodeEvent(d.data);
  } catch (err) {
    const de = err as DecodeError;
    return reject(rejection(de.partial?.entity ?? token, de.message, de.partial));
  }
  if (!(DESIRED_TYPES as readonly string[]).includes(e.type)) return reject(rejection(e.entity, `${e.type} is not a desired event`, e));
  if (e.src !== 'controller') return reject(rejection(e.entity, `desired events come from the controller, not ${e.src}`, e));
  if (e.entity !== token) return reject(rejection(token, `entity ${e.entity} does not match subject ${d.subject}`, e));
  // a forged desired event (a stolen NATS grant, a server-side insert) is refused here, before anything acts
  const problem = signed?.(e, d.data, d.sig);
  if (problem) return reject(rejection(e.entity, `signature: ${problem}`, e));
  const stored = { seq: d.seq, hash: hashBytes(d.data), event: e as DesiredEvent };
  const kind = e.type === 'NetworkCreateRequested' || e.type === 'NetworkRemoveRequested' ? 'network'
    : e.type === 'VolumeCreateRequested' || e.type === 'VolumeRemoveRequested' ? 'volume' : 'container';
  return { kind, stored };
}

/** The agent's memory decides: applied or rejected before (a replay), or to act on now. */
export function settle(c: Classified, seq: number, mem: TriageMemory): Triage {
  // refused before, at triage or by an action: a replay (an action's refusal is kept under the entity)
  const token = c.kind === 'reject' ? c.token : c.stored.event.entity;
  if (seq <= mem.seen(rejectKey(token))) return { kind: 'replay' };
  if (c.kind === 'reject') return c.t;
  const e = c.stored.event;
  if (c.kind === 'network') return seq <= mem.seen(e.entity) ? { kind: 'replay' } : { kind: 'network', stored: c.stored as Extract<Triage, { kind: 'network' }>['stored'] };
  if (c.kind === 'volume') return seq <= mem.seen(e.entity) ? { kind: 'replay' } : { kind: 'volume', stored: c.stored as Extract<Triage, { kind: 'volume' }>['stored'] };
  const rec = mem.get(e.entity);
  if (rec && seq <= rec.lastSeq) return { kind: 'replay' }; // already applied
  return { kind: 'container', stored: c.stored as Extract<Triage, { kind: 'container' }>['stored'] };
}

export function triage(d: Delivery, mem: TriageMemory): Triage {
  return settle(classify(d), d.seq, mem);
}
