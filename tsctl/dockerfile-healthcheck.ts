// HEALTHCHECK as a Dockerfile says it: `HEALTHCHECK NONE`, or `HEALTHCHECK [--interval=D]
// [--timeout=D] [--start-period=D] [--start-interval=D] [--retries=N] CMD command` in shell form
// (Test ["CMD-SHELL", text]) or exec form (Test ["CMD", ...]), into the image config's
// Healthcheck with docker's field names and durations in ns. Pure; a problem is one
// DockerfileError naming the line, in docker's words where it has them.
import { DockerfileError, execForm, type RawInstruction } from './dockerfile.js';
import { formatNs, HEALTH_MAX_NS, HEALTH_MAX_RETRIES, HEALTH_MIN_NS, parseGoDuration, type Healthcheck } from '../shared/health.js';

export const HEALTHCHECK_FLAGS = ['interval', 'timeout', 'start-period', 'start-interval', 'retries'] as const;
const FIELD = { interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval' } as const;

export function parseHealthcheck(ins: RawInstruction): Healthcheck {
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(ins.text.trim());
  const kind = (m?.[1] ?? '').toUpperCase();
  const rest = (m?.[2] ?? '').trim();
  for (const f of Object.keys(ins.flags)) {
    if (!(HEALTHCHECK_FLAGS as readonly string[]).includes(f)) throw new DockerfileError(ins.line, `HEALTHCHECK --${f}: unknown flag (${HEALTHCHECK_FLAGS.map((x) => `--${x}`).join(', ')})`);
  }
  // the flags first, as docker: a value like `--interval 5s` (no =) is named as the flag's problem
  const h: Healthcheck = { Test: [] };
  for (const [flag, field] of Object.entries(FIELD) as [keyof typeof FIELD, typeof FIELD[keyof typeof FIELD]][]) {
    const v = ins.flags[flag];
    if (v === undefined) continue;
    const ns = parseGoDuration(v);
    if (ns === undefined) throw new DockerfileError(ins.line, `HEALTHCHECK --${flag}=${JSON.stringify(v.slice(0, 32))}: a duration like 30s, 1m30s or 500ms, at most ${formatNs(HEALTH_MAX_NS)}`);
    if (ns !== 0 && ns < HEALTH_MIN_NS) throw new DockerfileError(ins.line, `HEALTHCHECK --${flag} cannot be less than 1ms`);
    if (ns) h[field] = ns;
  }
  if (ins.flags.retries !== undefined) {
    const r = ins.flags.retries;
    if (!/^\d{1,6}$/.test(r) || Number(r) > HEALTH_MAX_RETRIES) throw new DockerfileError(ins.line, `HEALTHCHECK --retries=${JSON.stringify(r.slice(0, 32))}: a count, 0 to ${HEALTH_MAX_RETRIES}`);
    if (Number(r)) h.Retries = Number(r);
  }
  if (kind === 'NONE') {
    if (rest) throw new DockerfileError(ins.line, 'HEALTHCHECK NONE takes no arguments');
    if (Object.keys(ins.flags).length) throw new DockerfileError(ins.line, 'HEALTHCHECK NONE takes no flags');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD') throw new DockerfileError(ins.line, `unknown type ${JSON.stringify(kind.slice(0, 20))} in HEALTHCHECK (try CMD or NONE)`);
  if (!rest) throw new DockerfileError(ins.line, 'missing command after HEALTHCHECK CMD');
  if (rest.startsWith('[')) {
    const argv = execForm(rest);
    if (!argv) throw new DockerfileError(ins.line, `HEALTHCHECK CMD ${rest.slice(0, 40)}: not a JSON array of strings (exec form)`);
    if (!argv.length || !argv[0]) throw new DockerfileError(ins.line, 'HEALTHCHECK CMD []: the exec form needs a command');
    h.Test = ['CMD', ...argv];
  } else {
    h.Test = ['CMD-SHELL', rest];
  }
  return h;
}
