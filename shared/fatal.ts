// The one line a long-lived process ends with on stderr. nats.js's own errors are a bare
// code ("TIMEOUT"): the controller and agent in CI's VM lane ended with "agent: TIMEOUT" and
// nothing said which of a dozen requests it was, so such a line also names the first place in
// this project's code on the error's stack.

/** `who: message`, and for a message that is only an upper-case code, ` (at FILE:LINE)` of the project's first frame. */
export function fatalLine(who: string, err: unknown): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const msg = e.message.replace(/\s*\n\s*/g, ' ').trim() || e.name;
  if (!/^[A-Z][A-Z_]*$/.test(msg)) return `${who}: ${msg}`;
  const at = (e.stack ?? '').split('\n').map((l) => /\/dist\/((?!node_modules\/)[^\s:()]+):(\d+):\d+/.exec(l)).find((m) => m !== null);
  return `${who}: ${msg}${at ? ` (at ${at[1]}:${at[2]})` : ''}`;
}
