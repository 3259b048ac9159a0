// Compiles an OCI linux.seccomp object into a classic BPF program for
// seccomp(SECCOMP_SET_MODE_FILTER): pure, no libseccomp. The monitor only loads the bytes.
//
// Program layout:
//   ld arch ─▶ one section per architecture the profile names (and the native one);
//              any other architecture: SECCOMP_RET_KILL_PROCESS (libseccomp's bad-arch default)
//   section:  ld nr ─▶ a balanced binary tree over syscall-number ranges (JGE), so a syscall
//              costs ~log2(ranges) comparisons instead of a walk down a list of ~350;
//              a leaf is a RET, or the argument checks of one syscall followed by a RET.
//   Numbers above the highest one the table knows return ENOSYS when the default action
//   denies (runc does the same): a new libc then falls back to an older syscall instead
//   of failing with EPERM. x32 numbers (bit 30 on x86_64) are refused with ENOSYS.
// Conditional jumps only ever skip one instruction or stay inside one syscall's checks;
// long distances use JA, whose offset is 32 bits, so no program outgrows cBPF's 8-bit jt/jf.
import { I386, X86_64 } from './syscalls-x86.js';
import type { OciSeccomp, OciSeccompAction, OciSeccompArg, OciSeccompRule } from './types.js';

export class SeccompError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`invalid seccomp profile: ${field}: ${reason}`);
    this.name = 'SeccompError';
  }
}

export interface CompiledSeccomp {
  /** struct sock_filter[], host byte order (little-endian here). */
  program: Buffer;
  /** SECCOMP_FILTER_FLAG_* bits for seccomp(2). */
  flags: number;
}

// linux/seccomp.h, linux/audit.h, linux/filter.h
export const RET = {
  KILL_PROCESS: 0x80000000, KILL_THREAD: 0, TRAP: 0x00030000, ERRNO: 0x00050000,
  TRACE: 0x7ff00000, LOG: 0x7ffc0000, ALLOW: 0x7fff0000,
} as const;
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
const X32_SYSCALL_BIT = 0x40000000;
const EPERM = 1, ENOSYS = 38;
const BPF_MAXINSNS = 4096;

const LD_W_ABS = 0x20, JA = 0x05, JEQ = 0x15, JGT = 0x25, JGE = 0x35, AND_K = 0x54, RET_K = 0x06;
const OFF_NR = 0, OFF_ARCH = 4, OFF_ARGS = 16;

const FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1, SECCOMP_FILTER_FLAG_LOG: 2, SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

interface ArchInfo { audit: number; table: Readonly<Record<string, number>>; x32Bit: boolean }
const ARCHES: Record<string, ArchInfo> = {
  SCMP_ARCH_X86_64: { audit: AUDIT_ARCH_X86_64, table: X86_64, x32Bit: true },
  SCMP_ARCH_X86: { audit: AUDIT_ARCH_I386, table: I386, x32Bit: false },
};
/** Names of other architectures a profile may list: no syscall of theirs can reach this kernel. */
const FOREIGN = new Set([
  'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64',
]);

export function nativeArch(): string {
  if (process.arch === 'x64') return 'SCMP_ARCH_X86_64';
  if (process.arch === 'ia32') return 'SCMP_ARCH_X86';
  throw new SeccompError('architectures', `no syscall table for ${process.arch} in swarmlite (x86_64 and x86 only)`);
}

// ── a tiny assembler with labels ─────────────────────────────────────────────
type Label = { id: number };
type Target = Label | number; // a label, or a literal skip count (0 = next instruction)
interface Ins { code: number; k: number; jt: Target; jf: Target; kLabel?: Label }

class Asm {
  ins: Ins[] = [];
  private at = new Map<number, number>();
  private next = 0;
  label(): Label { return { id: this.next++ }; }
  here(l: Label): void { this.at.set(l.id, this.ins.length); }
  op(code: number, k: number, jt: Target = 0, jf: Target = 0): void { this.ins.push({ code, k: k >>> 0, jt, jf }); }
  ld(off: number): void { this.op(LD_W_ABS, off); }
  ret(k: number): void { this.op(RET_K, k); }
  ja(l: Label): void { this.ins.push({ code: JA, k: 0, jt: 0, jf: 0, kLabel: l }); }
  bytes(): Buffer {
    if (this.ins.length > BPF_MAXINSNS) throw new SeccompError('syscalls', `program of ${this.ins.length} instructions, more than ${BPF_MAXINSNS}`);
    const buf = Buffer.alloc(this.ins.length * 8);
    this.ins.forEach((x, pc) => {
      const rel = (t: Target, what: string, max: number) => {
        if (typeof t === 'number') return t;
        const dst = this.at.get(t.id);
        if (dst === undefined) throw new Error(`seccomp compiler: unplaced label (${what})`);
        const off = dst - pc - 1;
        if (off < 0 || off > max) throw new Error(`seccomp compiler: jump of ${off} at ${pc} (${what})`);
        return off;
      };
      buf.writeUInt16LE(x.code, pc * 8);
      buf.writeUInt8(rel(x.jt, 'jt', 255), pc * 8 + 2);
      buf.writeUInt8(rel(x.jf, 'jf', 255), pc * 8 + 3);
      buf.writeUInt32LE(x.kLabel ? rel(x.kLabel, 'ja', 0xffffffff) : x.k, pc * 8 + 4);
    });
    return buf;
  }
}

// ── validation ───────────────────────────────────────────────────────────────
function errnoOf(field: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 4095) throw new SeccompError(field, `errno ${String(v)} out of range 0..4095`);
  return v as number;
}

function actionValue(field: string, action: OciSeccompAction, errnoRet: unknown, dfltErrno: number): number {
  switch (action) {
    case 'SCMP_ACT_ALLOW': return RET.ALLOW;
    case 'SCMP_ACT_ERRNO': return (RET.ERRNO | errnoOf(`${field}.errnoRet`, errnoRet, dfltErrno)) >>> 0;
    case 'SCMP_ACT_KILL': case 'SCMP_ACT_KILL_THREAD': return RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS': return RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP': return RET.TRAP;
    case 'SCMP_ACT_LOG': return RET.LOG;
    case 'SCMP_ACT_TRACE': return (RET.TRACE | errnoOf(`${field}.errnoRet`, errnoRet, EPERM)) >>> 0;
    case 'SCMP_ACT_NOTIFY': throw new SeccompError(field, 'SCMP_ACT_NOTIFY needs a seccomp agent, which swarmlite does not run');
    default: throw new SeccompError(field, `unknown action ${JSON.stringify(action)}`);
  }
}

/** A JSON number as an unsigned 64-bit value (what seccomp compares). */
function u64(field: string, v: unknown): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new SeccompError(field, `not an integer: ${JSON.stringify(v)}`);
  const b = BigInt(v);
  if (b < 0n) return b & 0xffffffffffffffffn; // -1 as Go's uint64 conversion would see it
  if (b > 0xffffffffffffffffn) throw new SeccompError(field, 'larger than 64 bits');
  return b;
}

interface Cond { rule: OciSeccompRule; ret: number; field: string }

// ── argument checks: 64-bit comparisons on 32-bit words ──────────────────────
function emitArg(a: Asm, field: string, arg: OciSeccompArg, fail: Label): void {
  if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5) throw new SeccompError(`${field}.index`, `${String(arg.index)} not in 0..5`);
  const v = u64(`${field}.value`, arg.value);
  const lo = Number(v & 0xffffffffn), hi = Number(v >> 32n);
  const offLo = OFF_ARGS + 8 * arg.index, offHi = offLo + 4;
  const pass = a.label();
  switch (arg.op) {
    case 'SCMP_CMP_EQ':
      a.ld(offHi); a.op(JEQ, hi, 0, fail);
      a.ld(offLo); a.op(JEQ, lo, 0, fail);
      break;
    case 'SCMP_CMP_NE':
      a.ld(offHi); a.op(JEQ, hi, 0, pass);
      a.ld(offLo); a.op(JEQ, lo, fail, 0);
      break;
    case 'SCMP_CMP_MASKED_EQ': {
      const d = u64(`${field}.valueTwo`, arg.valueTwo ?? 0);
      const dlo = Number(d & 0xffffffffn), dhi = Number(d >> 32n);
      a.ld(offHi); a.op(AND_K, hi); a.op(JEQ, dhi, 0, fail);
      a.ld(offLo); a.op(AND_K, lo); a.op(JEQ, dlo, 0, fail);
      break;
    }
    case 'SCMP_CMP_GT': case 'SCMP_CMP_GE':
      a.ld(offHi); a.op(JGT, hi, pass, 0); a.op(JEQ, hi, 0, fail);
      a.ld(offLo); a.op(arg.op === 'SCMP_CMP_GT' ? JGT : JGE, lo, 0, fail);
      break;
    case 'SCMP_CMP_LT': case 'SCMP_CMP_LE':
      a.ld(offHi); a.op(JGT, hi, fail, 0); a.op(JEQ, hi, 0, pass);
      a.ld(offLo); a.op(arg.op === 'SCMP_CMP_LT' ? JGE : JGT, lo, fail, 0);
      break;
    default:
      throw new SeccompError(`${field}.op`, `unknown operator ${JSON.stringify(arg.op)}`);
  }
  a.here(pass);
}

// ── one architecture's section ───────────────────────────────────────────────
type Leaf = { ret: number } | { conds: Cond[]; fallback: number };

function compileArch(a: Asm, info: ArchInfo, rules: Cond[], dflt: number, denyByDefault: boolean): void {
  const conds = new Map<number, Cond[]>();
  const plain = new Map<number, number>();
  for (const c of rules) {
    for (const name of c.rule.names) {
      const nr = info.table[name];
      if (nr === undefined) continue; // another architecture's syscall, or newer than the table
      if (c.rule.args?.length) conds.set(nr, [...(conds.get(nr) ?? []), c]);
      else if (!plain.has(nr)) plain.set(nr, c.ret); // the first unconditional rule decides
    }
  }
  const leafOf = (nr: number): Leaf => {
    const cs = conds.get(nr);
    const fallback = plain.get(nr) ?? dflt;
    return cs ? { conds: cs, fallback } : { ret: fallback };
  };
  const maxNr = Math.max(...Object.values(info.table));
  // Ranges [lo, next lo) with one leaf each; adjacent plain ranges with the same RET merge.
  const ranges: { lo: number; leaf: Leaf }[] = [];
  const push = (lo: number, leaf: Leaf) => {
    const last = ranges[ranges.length - 1];
    if (last && 'ret' in last.leaf && 'ret' in leaf && last.leaf.ret === leaf.ret) return;
    ranges.push({ lo, leaf });
  };
  // A number the table lacks below its highest was never assigned on this architecture
  // (numbers are not reused; new ones come after the highest): the kernel answers ENOSYS
  // whatever the filter says, so it joins the range before it, and the tree gets smaller.
  const assigned = new Set(Object.values(info.table));
  for (let nr = 0; nr <= maxNr; nr++) if (assigned.has(nr)) push(nr, leafOf(nr));
  push(maxNr + 1, { ret: denyByDefault ? (RET.ERRNO | ENOSYS) >>> 0 : dflt });
  if (info.x32Bit) push(X32_SYSCALL_BIT, { ret: (RET.ERRNO | ENOSYS) >>> 0 });

  a.ld(OFF_NR);
  const tree = (from: number, to: number): void => {
    if (to - from === 1) {
      const leaf = ranges[from].leaf;
      if ('ret' in leaf) return a.ret(leaf.ret);
      for (const c of leaf.conds) {
        const next = a.label();
        c.rule.args!.forEach((arg, i) => emitArg(a, `${c.field}.args[${i}]`, arg, next));
        a.ret(c.ret);
        a.here(next);
      }
      return a.ret(leaf.fallback);
    }
    const mid = (from + to) >> 1;
    // A child that is a lone RET sits right after the test: no JA, no label (fewer
    // instructions load and JIT faster, and seccomp's per-syscall cache is built quicker).
    const lone = (i: number, j: number) => (j - i === 1 && 'ret' in ranges[i]!.leaf ? ranges[i]!.leaf.ret : undefined);
    const r = lone(mid, to), l = lone(from, mid);
    if (r !== undefined) {
      a.op(JGE, ranges[mid]!.lo, 0, 1);
      a.ret(r);
      return tree(from, mid);
    }
    if (l !== undefined) {
      a.op(JGE, ranges[mid]!.lo, 1, 0);
      a.ret(l);
      return tree(mid, to);
    }
    const right = a.label();
    a.op(JGE, ranges[mid].lo, 0, 1); // nr >= boundary: take the JA; below: skip it
    a.ja(right);
    tree(from, mid);
    a.here(right);
    tree(mid, to);
  };
  tree(0, ranges.length);
}

/** OCI seccomp → cBPF. Throws SeccompError naming the field for anything it cannot honour. */
export function compileSeccomp(s: OciSeccomp, native = nativeArch()): CompiledSeccomp {
  if (!s || typeof s !== 'object') throw new SeccompError('seccomp', 'not an object');
  const dfltErrno = errnoOf('defaultErrnoRet', s.defaultErrnoRet, EPERM);
  const dflt = actionValue('defaultAction', s.defaultAction, s.defaultErrnoRet, dfltErrno);
  const denyByDefault = dflt !== RET.ALLOW && dflt !== RET.LOG;
  if (s.listenerPath) throw new SeccompError('listenerPath', 'seccomp notify agents are not supported');
  let flags = 0;
  for (const [i, f] of (s.flags ?? []).entries()) {
    if (!(f in FLAGS)) throw new SeccompError(`flags[${i}]`, `unsupported ${JSON.stringify(f)}`);
    flags |= FLAGS[f]!;
  }
  const arches = [native];
  for (const [i, name] of (s.architectures ?? []).entries()) {
    if (name in ARCHES) { if (!arches.includes(name)) arches.push(name); } else if (!FOREIGN.has(name)) {
      throw new SeccompError(`architectures[${i}]`, `unknown ${JSON.stringify(name)}`);
    }
  }
  if (!Array.isArray(s.syscalls ?? [])) throw new SeccompError('syscalls', 'not a list');
  const rules: Cond[] = (s.syscalls ?? []).map((rule, i) => {
    const field = `syscalls[${i}]`;
    if (!Array.isArray(rule.names) || rule.names.some((n) => typeof n !== 'string')) throw new SeccompError(`${field}.names`, 'not a list of names');
    if (rule.args !== undefined && !Array.isArray(rule.args)) throw new SeccompError(`${field}.args`, 'not a list');
    if ((rule.args?.length ?? 0) > 6) throw new SeccompError(`${field}.args`, 'more than 6 conditions');
    return { rule, field, ret: actionValue(`${field}.action`, rule.action, rule.errnoRet, EPERM) };
  });

  const a = new Asm();
  const sections = arches.map(() => a.label());
  a.ld(OFF_ARCH);
  arches.forEach((name, i) => {
    a.op(JEQ, ARCHES[name]!.audit, 0, 1);
    a.ja(sections[i]!);
  });
  a.ret(RET.KILL_PROCESS);
  arches.forEach((name, i) => {
    a.here(sections[i]!);
    compileArch(a, ARCHES[name]!, rules, dflt, denyByDefault);
  });
  return { program: a.bytes(), flags };
}

// ── an interpreter, for tests: what the kernel would return for one syscall ─────
export interface SeccompData { nr: number; arch: number; args?: (number | bigint)[] }

export function runFilter(program: Buffer, d: SeccompData): number {
  const word = (off: number): number => {
    if (off === OFF_NR) return d.nr >>> 0;
    if (off === OFF_ARCH) return d.arch >>> 0;
    const i = (off - OFF_ARGS) >> 3;
    const v = BigInt(d.args?.[i] ?? 0) & 0xffffffffffffffffn;
    return Number(((off - OFF_ARGS) & 4 ? v >> 32n : v) & 0xffffffffn);
  };
  let A = 0;
  for (let pc = 0; pc < program.length / 8;) {
    const code = program.readUInt16LE(pc * 8), jt = program[pc * 8 + 2]!, jf = program[pc * 8 + 3]!, k = program.readUInt32LE(pc * 8 + 4);
    pc++;
    switch (code) {
      case LD_W_ABS: A = word(k); break;
      case AND_K: A = (A & k) >>> 0; break;
      case JA: pc += k; break;
      case JEQ: pc += A === k ? jt : jf; break;
      case JGT: pc += A > k ? jt : jf; break;
      case JGE: pc += A >= k ? jt : jf; break;
      case RET_K: return k;
      default: throw new Error(`unknown opcode ${code} at ${pc - 1}`);
    }
  }
  throw new Error('fell off the end of the program');
}
