// v2 devices: cgroup2 has no devices files; the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE
// program attached to the group (as runc and crun do). This is the pure encoder of that
// program: eBPF instructions as bytes, loaded and attached by native/cgroup-bpf.ts.
//
// The program sees struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// with access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*, and returns 1 (allow) or 0.
// Rules are tested last to first, so the last matching rule decides (v1's order); an allow
// rule matches when every requested access is in its set, a deny rule when any is. With no
// match the answer is "allow" unless a type-a deny (Docker's first rule) said otherwise —
// that rule matches everything, so behind it the default is deny, as in v1.
import { checkDeviceRule } from '../device-rules.js';
import type { DeviceRule } from '../types.js';

export const DEV_BLOCK = 1, DEV_CHAR = 2;
export const ACC_MKNOD = 1, ACC_READ = 2, ACC_WRITE = 4;

// linux/bpf_common.h, linux/bpf.h opcodes used here
const LDX_W = 0x61;      // BPF_LDX | BPF_W | BPF_MEM: dst = *(u32 *)(src + off)
const AND64_K = 0x57;    // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_K = 0x77;    // BPF_ALU64 | BPF_RSH | BPF_K
const MOV64_K = 0xb7;    // BPF_ALU64 | BPF_MOV | BPF_K
const MOV64_X = 0xbf;    // BPF_ALU64 | BPF_MOV | BPF_X
const JNE_K = 0x55;      // BPF_JMP | BPF_JNE | BPF_K: pc += off when dst != imm
const JEQ_K = 0x15;
const EXIT = 0x95;
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;

interface Insn { code: number; dst: number; src: number; off: number; imm: number }
const ins = (code: number, dst: number, src: number, off: number, imm: number): Insn => ({ code, dst, src, off, imm });

export function accessBits(access: string | undefined): number {
  const a = access || 'rwm';
  return (a.includes('m') ? ACC_MKNOD : 0) | (a.includes('r') ? ACC_READ : 0) | (a.includes('w') ? ACC_WRITE : 0);
}

/** The instructions that return for one rule, or fall through to the next rule when it does not match. */
function ruleBlock(r: DeviceRule): Insn[] {
  const tests: ((skip: number) => Insn)[] = [];
  if (r.type === 'c' || r.type === 'b') {
    const t = r.type === 'c' ? DEV_CHAR : DEV_BLOCK;
    tests.push((skip) => ins(JNE_K, R2, 0, skip, t));
  }
  if (r.major !== undefined && r.major >= 0) tests.push((skip) => ins(JNE_K, R4, 0, skip, r.major!));
  if (r.minor !== undefined && r.minor >= 0) tests.push((skip) => ins(JNE_K, R5, 0, skip, r.minor!));
  const acc = accessBits(r.access);
  const all = ACC_MKNOD | ACC_READ | ACC_WRITE;
  const accessTest: Insn[] = [];
  if (r.allow && acc !== all) {
    // allow only when (requested & ~acc) == 0
    accessTest.push(ins(MOV64_X, R1, R3, 0, 0), ins(AND64_K, R1, 0, 0, all & ~acc));
  } else if (!r.allow && acc !== all) {
    // deny only when (requested & acc) != 0
    accessTest.push(ins(MOV64_X, R1, R3, 0, 0), ins(AND64_K, R1, 0, 0, acc));
  }
  const tail = [ins(MOV64_K, R0, 0, 0, r.allow ? 1 : 0), ins(EXIT, 0, 0, 0, 0)];
  // Each test jumps past the rest of the block; count what follows it.
  const out: Insn[] = [];
  const afterTests = accessTest.length + (accessTest.length ? 1 : 0) + tail.length;
  tests.forEach((t, i) => out.push(t(tests.length - i - 1 + afterTests)));
  if (accessTest.length) {
    out.push(...accessTest);
    out.push(ins(r.allow ? JNE_K : JEQ_K, R1, 0, tail.length, 0));
  }
  out.push(...tail);
  return out;
}

export function instructions(rules: readonly DeviceRule[]): Insn[] {
  rules.forEach((r, i) => checkDeviceRule(r, i));
  const prologue = [
    ins(LDX_W, R2, R1, 0, 0), ins(AND64_K, R2, 0, 0, 0xffff), // r2 = device type
    ins(LDX_W, R3, R1, 0, 0), ins(RSH64_K, R3, 0, 0, 16),     // r3 = requested access
    ins(LDX_W, R4, R1, 4, 0),                                  // r4 = major
    ins(LDX_W, R5, R1, 8, 0),                                  // r5 = minor
  ];
  const body: Insn[] = [];
  for (const r of [...rules].reverse()) {
    const block = ruleBlock(r);
    body.push(...block);
    // A rule that matches everything ends the program: what follows could never run, and
    // the verifier refuses unreachable instructions.
    if (block.length === 2) return [...prologue, ...body];
  }
  return [...prologue, ...body, ins(MOV64_K, R0, 0, 0, 1), ins(EXIT, 0, 0, 0, 0)];
}

/** struct bpf_insn[] (8 bytes each, little-endian host), ready for BPF_PROG_LOAD. */
export function program(rules: readonly DeviceRule[]): Buffer {
  const list = instructions(rules);
  const buf = Buffer.alloc(list.length * 8);
  list.forEach((x, i) => {
    buf.writeUInt8(x.code, i * 8);
    buf.writeUInt8((x.src << 4) | x.dst, i * 8 + 1);
    buf.writeInt16LE(x.off, i * 8 + 2);
    buf.writeInt32LE(x.imm | 0, i * 8 + 4);
  });
  return buf;
}

/** An interpreter of exactly the instructions above, for unit tests: 1 allow, 0 deny. */
export function evaluate(prog: Buffer, dev: { type: number; access: number; major: number; minor: number }): number {
  const r = new Array<number>(11).fill(0);
  const ctx = [(dev.access << 16) | dev.type, dev.major, dev.minor];
  for (let pc = 0; pc < prog.length / 8;) {
    const code = prog[pc * 8]!, regs = prog[pc * 8 + 1]!, off = prog.readInt16LE(pc * 8 + 2), imm = prog.readInt32LE(pc * 8 + 4);
    const dst = regs & 0xf, src = regs >> 4;
    pc++;
    switch (code) {
      case LDX_W: if (src !== R1) throw new Error('ctx load from a register other than r1'); r[dst] = ctx[off / 4]! >>> 0; break;
      case AND64_K: r[dst] = (r[dst]! & imm) >>> 0; break;
      case RSH64_K: r[dst] = r[dst]! >>> imm; break;
      case MOV64_K: r[dst] = imm; break;
      case MOV64_X: r[dst] = r[src]!; break;
      case JNE_K: if (r[dst] !== imm) pc += off; break;
      case JEQ_K: if (r[dst] === imm) pc += off; break;
      case EXIT: return r[R0]!;
      default: throw new Error(`unknown opcode ${code}`);
    }
  }
  throw new Error('fell off the end');
}
