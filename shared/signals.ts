// Signal names and numbers from the platform's own table (os.constants.signals), so every
// signal the kernel can deliver has a name and a 128+n exit code, not only a hand-picked few.
import { constants } from 'node:os';

const BY_NAME: Readonly<Record<string, number>> = constants.signals;
const BY_NUMBER = new Map<number, string>();
// first name wins for aliases (SIGABRT before SIGIOT, SIGIO before SIGPOLL)
for (const [name, n] of Object.entries(BY_NAME)) if (!BY_NUMBER.has(n)) BY_NUMBER.set(n, name);

export class SignalError extends Error {
  constructor(readonly input: string) {
    super(`invalid signal "${input}": use a name like TERM or KILL, or a number`);
    this.name = 'SignalError';
  }
}

/** 'term' | 'SIGTERM' | '15' | 15 → 'SIGTERM'. Throws SignalError. */
export function signalName(v: unknown): string {
  const s = String(v).toUpperCase().replace(/^SIG/, '');
  if (/^[0-9]{1,2}$/.test(s)) {
    const name = BY_NUMBER.get(Number(s));
    if (name) return name;
  } else if (Object.hasOwn(BY_NAME, `SIG${s}`)) return `SIG${s}`;
  throw new SignalError(String(v));
}

/** 'SIGKILL' | 'KILL' → 9, or undefined for a name the platform does not have. */
export function signalNumber(name: string): number | undefined {
  const n = name.startsWith('SIG') ? name : `SIG${name}`;
  return Object.hasOwn(BY_NAME, n) ? BY_NAME[n] : undefined;
}
