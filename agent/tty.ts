// A terminal's size as a client sends it (the `resize` header of a stdin message: "ROWS COLS").
// Pure: the agent turns a good one into a resize record for the monitor, and answers a bad
// one with this one line on the session's stderr, never with a crash.
import { TTY_MAX } from '../shared/api/agent.js';

export function parseResize(v: string): { rows: number; cols: number } | string {
  const m = /^([0-9]{1,10}) ([0-9]{1,10})$/.exec(v);
  if (!m) return `invalid window size ${JSON.stringify(v.slice(0, 40))}: "ROWS COLS"`;
  const rows = Number(m[1]);
  const cols = Number(m[2]);
  if (rows < 1 || cols < 1 || rows > TTY_MAX || cols > TTY_MAX) return `invalid window size ${rows}x${cols}: rows and columns are 1-${TTY_MAX}`;
  return { rows, cols };
}
