// OCI hooks that run in the runtime's namespace (prestart, createRuntime, poststart,
// poststop): each is exec'd directly (no shell) with its args and env, the container's
// state JSON on its stdin, and killed at its timeout. They run in order; the first that
// fails stops the list (runtime-spec: create fails on a failed prestart/createRuntime).
import { spawnSync } from 'node:child_process';
import type { OciHook } from './bundle.js';
import type { OciState } from './state.js';

export class HookError extends Error {
  constructor(readonly kind: string, readonly index: number, readonly hookPath: string, reason: string) {
    super(`${kind} hook ${index} (${hookPath}): ${reason}`);
    this.name = 'HookError';
  }
}

export function runHooks(kind: string, hooks: readonly OciHook[] | undefined, state: OciState): void {
  (hooks ?? []).forEach((h, i) => {
    const args = h.args?.length ? h.args : [h.path];
    const r = spawnSync(h.path, args.slice(1), {
      argv0: args[0],
      env: Object.fromEntries((h.env ?? []).map((e) => { const eq = e.indexOf('='); return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)]; })),
      input: JSON.stringify(state),
      stdio: ['pipe', 'inherit', 'inherit'],
      ...(h.timeout ? { timeout: h.timeout * 1000, killSignal: 'SIGKILL' as const } : {}),
    });
    // a hook need not read its stdin: EPIPE is no failure, its exit status says
    if (r.error && (r.error as NodeJS.ErrnoException).code !== 'EPIPE') {
      const code = (r.error as NodeJS.ErrnoException).code;
      throw new HookError(kind, i, h.path, code === 'ETIMEDOUT' ? `timed out after ${h.timeout} s` : String(code ?? r.error.message));
    }
    if (r.signal) throw new HookError(kind, i, h.path, h.timeout && r.signal === 'SIGKILL' ? `timed out after ${h.timeout} s` : `killed by ${r.signal}`);
    if (r.status !== 0) throw new HookError(kind, i, h.path, `exited with ${r.status}`);
  });
}
