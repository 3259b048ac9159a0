// OCI hooks that run in the runtime's namespace (prestart, createRuntime, poststart,
// poststop): each is exec'd directly (no shell) with its args and env, the container's
// state JSON on its stdin, and killed at its timeout. They run in order; for prestart and
// createRuntime the first that fails stops the list and fails create (runtime-spec); a failed
// poststart or poststop is a warning and the rest still run.
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
  (hooks ?? []).forEach((h, i) => runHook(kind, i, h, state));
}

/**
 * poststart and poststop: a failing hook is a warning (on stderr), and the hooks after it
 * still run (runtime-spec: "the remaining hooks and lifecycle continue as if the hook had
 * succeeded"). Returns the warnings.
 */
export function runHooksWarn(kind: string, hooks: readonly OciHook[] | undefined, state: OciState): string[] {
  const warnings: string[] = [];
  (hooks ?? []).forEach((h, i) => {
    try { runHook(kind, i, h, state); } catch (e) {
      warnings.push((e as Error).message);
      process.stderr.write(`sl-runtime: warning: ${(e as Error).message}\n`);
    }
  });
  return warnings;
}

function runHook(kind: string, i: number, h: OciHook, state: OciState): void {
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
}
