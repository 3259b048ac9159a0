// v2 freezer: cgroup.freeze takes 1/0; cgroup.events says "frozen 1" once it took effect.
import { parseKeyValues } from '../fs.js';

export const FILE = 'cgroup.freeze';

export function value(frozen: boolean): string {
  return frozen ? '1' : '0';
}

/** Pure: whether cgroup.events shows the requested state. */
export function reached(events: string, frozen: boolean): boolean {
  return (parseKeyValues(events)['frozen'] ?? -1) === (frozen ? 1 : 0);
}
