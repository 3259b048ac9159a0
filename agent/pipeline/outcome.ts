// What an action decided, for the reconciler to record: actions act on the host and return
// an Outcome; they never append or write the checkpoint themselves.
import type { EventData, EventType } from '../../shared/events.js';
import type { ContainerRecord } from './checkpoint.js';

export type StateEvent = { [K in EventType]: { type: K; entity: string; data: EventData[K]; cause?: string } }[EventType];

export interface Outcome {
  /** State events to append, in this order. */
  events: StateEvent[];
  /** The container's record afterwards: a whole record, or a patch of the existing one. */
  record?: { id: string; set: ContainerRecord } | { id: string; patch: Partial<ContainerRecord> };
  /** A stream position to remember for a key that is not a container (a network, a rejection). */
  seen?: { key: string; seq: number };
  /** The container's output ended: publish what is left and the end marker before the events. */
  logsEnd?: string;
  /** Publish the container's output from now on (before the events); from `followFrom` in its log (a start again appends to it). */
  follow?: string;
  followFrom?: number;
  /** Its restart policy starts the container again at this time (ms since epoch): the reconciler's timer. */
  restartAt?: { id: string; at: number };
  /** Watch the container for its exit (after the events). */
  watch?: string;
  /** Stop watching the container: it is being removed. */
  unwatch?: string;
  /** A further step that acts once this outcome is recorded (removal after an exit was reported). */
  next?: () => Promise<Outcome>;
}

export const nothing = (): Outcome => ({ events: [] });

/** Where a rejection's position is kept: per subject token, valid entity or not. */
export const rejectKey = (subjectToken: string) => `rejected:${subjectToken}`;
