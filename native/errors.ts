// The one error type native/ throws: a failed system call, with what it was applied to.
// Callers branch on `code` ('EBUSY', 'ENOENT'); the message is for the edge (logs, tsctl).
import koffi from './koffi.js';
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

const errnoTable = getSystemErrorMap(); // key: -errno → [name, libuv's description]
const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);
let strerror: ((errno: number) => string) | undefined;

/** errno number → its name ("EEXIST"), or "E<n>" when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? errnoTable.get(-errno)?.[0] ?? `E${errno}`;
}

/** errno number → the C library's description ("Device or resource busy"), as strace and shells print it. */
export function errnoDescription(errno: number): string {
  try {
    strerror ??= koffi.load('libc.so.6').func('const char *strerror(int)') as (errno: number) => string;
    return strerror(errno);
  } catch {
    return errnoTable.get(-errno)?.[1] ?? 'unknown error';
  }
}

export class SyscallError extends Error {
  constructor(readonly syscall: string, readonly errno: number, readonly code: string, readonly path?: string) {
    // "mount /x/y: EBUSY (resource busy or locked)"
    super(`${syscall}${path ? ` ${path}` : ''}: ${code} (${errnoDescription(errno)})`);
    this.name = 'SyscallError';
  }

  /** Builds the error from a bare errno, naming it. */
  static of(syscall: string, errno: number, path?: string): SyscallError {
    return new SyscallError(syscall, errno, errnoName(errno), path);
  }
}
