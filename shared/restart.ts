// The record a supervisor (ops/supervise, or systemd through it) leaves for a process it
// started again: one line of JSON in <state>/run/<name>.restarts. Pure: the caller reads it.
import type { RestartInfo } from './events.js';
import { int, obj, str } from './validate.js';

const check = obj({ restarts: int(1, 1e9), status: int(0, 511), exit: str(200), upMs: int(0, Number.MAX_SAFE_INTEGER), exitedAt: str(40), by: str(16) });

/** The restart the text describes; undefined when there is none. Throws on a malformed record. */
export function parseRestart(text: string | undefined): RestartInfo | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const r = check(JSON.parse(text), 'restart');
  return { count: r.restarts, status: r.status, exit: r.exit, upMs: r.upMs, exitedAt: r.exitedAt, by: r.by };
}
