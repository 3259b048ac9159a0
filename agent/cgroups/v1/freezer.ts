// v1 freezer: freezer.state takes FROZEN/THAWED and reads FREEZING until every task stopped.
export const STATE = 'freezer.state';

export function stateValue(frozen: boolean): string {
  return frozen ? 'FROZEN' : 'THAWED';
}

/** Pure: whether the state read back means the request is complete. */
export function reached(text: string, frozen: boolean): boolean {
  return text.trim() === stateValue(frozen);
}
