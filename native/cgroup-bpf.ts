// cgroup v2 device rules: load + attach of the BPF program agent/cgroups/v2/devices.ts
// encodes (native/src/lib/cgroup_bpf.c). One synchronous call per container start on a
// pure cgroup v2 host, before the container's first task joins the group.
import koffi from './koffi.js';
import { fileURLToPath } from 'node:url';
import { SyscallError, errnoName } from './errors.js';

const libPath = fileURLToPath(new URL('../../native/build/libswarmlite.so', import.meta.url));

type AttachFn = (dir: string, insns: Buffer, len: number, log: Buffer, loglen: number, step: Buffer, steplen: number) => number;
let attach: AttachFn | undefined;

export class BpfVerifierError extends SyscallError {
  constructor(errno: number, path: string, readonly log: string) {
    super('bpf(BPF_PROG_LOAD)', errno, errnoName(errno), path);
    this.message += log ? ` — verifier: ${log.trim().split('\n').slice(-3).join(' | ')}` : '';
    this.name = 'BpfVerifierError';
  }
}

/** Attaches the device program to the cgroup2 directory; throws SyscallError on failure. */
export function attachDeviceFilter(cgroupDir: string, program: Buffer): void {
  attach ??= koffi.load(libPath).func('int sl_cgroup_device_attach(const char *dir, const uint8_t *insns, size_t len, char *log, int loglen, char *step, int steplen)') as AttachFn;
  const log = Buffer.alloc(4096), step = Buffer.alloc(64);
  const rc = attach(cgroupDir, program, program.length, log, log.length, step, step.length);
  if (rc === 0) return;
  const stepName = step.toString('utf8', 0, step.indexOf(0)) || 'bpf';
  if (stepName === 'bpf(BPF_PROG_LOAD)') throw new BpfVerifierError(-rc, cgroupDir, log.toString('utf8', 0, Math.max(0, log.indexOf(0))));
  throw SyscallError.of(stepName, -rc, cgroupDir);
}
