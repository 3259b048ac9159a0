// Thin NETLINK_ROUTE transport, after crun's net_device.c: send one request, read until its
// ACK (or NLMSG_DONE for a dump), turn an NLMSG_ERROR into a SyscallError carrying the errno
// the kernel reported. Message *contents* are built by pure encoders elsewhere
// (agent/network/netlink-msg.ts); this layer only knows the nlmsghdr framing.
import { SyscallError, errnoName } from './errors.js';
import { netLib } from './netns.js';

const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

/** One reply message: header fields plus the payload after the 16-byte nlmsghdr. */
export interface NetlinkReply {
  type: number;
  flags: number;
  seq: number;
  payload: Buffer;
}

/** A failed netlink request: errno from the kernel, plus its extended-ack text when it sent one. */
export class NetlinkError extends SyscallError {
  constructor(op: string, errno: number, target: string | undefined, readonly detail?: string) {
    super(op, errno, errnoName(errno), target);
    this.name = 'NetlinkError';
    if (detail) this.message += ` (${detail})`;
  }
}

let nextSeq = Math.floor(Date.now() / 1000) & 0x7fffffff;

export class NetlinkSocket {
  private readonly buf = Buffer.alloc(1 << 18);
  private closed = false;

  private constructor(private readonly fd: number, readonly netnsPath?: string) {}

  /** A bound socket in the namespace at `netnsPath` (default: the agent's own). */
  static open(netnsPath?: string): NetlinkSocket {
    const lib = netLib();
    const fd = lib.nlOpen(netnsPath ?? null);
    if (fd < 0) throw new SyscallError(lib.lastStep() || 'socket', -fd, errnoName(-fd), netnsPath ?? 'AF_NETLINK');
    return new NetlinkSocket(fd, netnsPath);
  }

  /** Wraps a netlink socket descriptor made elsewhere (createNetnsWithSocket); close() closes it. */
  static adopt(fd: number, netnsPath?: string): NetlinkSocket {
    return new NetlinkSocket(fd, netnsPath);
  }

  /**
   * Sends several requests in one sendto and waits for every answer: rtnetlink handles them
   * in order, one after the other, and answers each (a failed one does not stop the rest).
   * Returns each request's replies in order; throws the first failure, but only after every
   * answer was read, so the socket is left clean for the next call.
   */
  batch(reqs: { msg: Uint8Array; op: string; target?: string }[]): NetlinkReply[][] {
    if (reqs.length === 0) return [];
    const { req, seqs } = this.prepareBatch(reqs);
    const sent = netLib().nlSend(this.fd, req, req.length);
    if (sent < 0) throw new SyscallError('sendto', -sent, errnoName(-sent), reqs[0]!.op);
    const out = this.collectBatch(reqs, seqs);
    const failure = out.find((r): r is NetlinkError => r instanceof NetlinkError);
    if (failure) throw failure;
    return out as NetlinkReply[][];
  }

  /**
   * batch() with the sendto on a libuv worker thread, for requests the kernel takes long over
   * (deleting links: their unregistration waits for RCU, tens of ms). Each request's outcome
   * comes back on its own (its replies, or its NetlinkError), so a caller can accept some
   * errnos (ENODEV: already gone). Use a socket of its own: a concurrent request on the same
   * socket would read and drop these answers.
   */
  async batchSettledAsync(reqs: { msg: Uint8Array; op: string; target?: string }[]): Promise<(NetlinkReply[] | NetlinkError)[]> {
    if (reqs.length === 0) return [];
    const { req, seqs } = this.prepareBatch(reqs);
    const sent = await netLib().nlSendAsync(this.fd, req, req.length);
    if (sent < 0) throw new SyscallError('sendto', -sent, errnoName(-sent), reqs[0]!.op);
    return this.collectBatch(reqs, seqs); // rtnetlink queued every answer before sendto returned
  }

  private prepareBatch(reqs: { msg: Uint8Array; op: string }[]): { req: Buffer; seqs: number[] } {
    if (this.closed) throw new Error('netlink socket is closed');
    // one buffer, each message copied in once and its sequence number written there (a copy
    // per message and then the concat were ~7% of the agent's time under 100 removals)
    let total = 0;
    for (const r of reqs) total += r.msg.length;
    const req = Buffer.allocUnsafe(total);
    const seqs: number[] = [];
    let off = 0;
    for (const r of reqs) {
      const m = r.msg;
      if (m.length < 16) throw new Error(`${r.op}: netlink message shorter than its header`);
      const flags = m[6]! | (m[7]! << 8);
      if ((flags & NLM_F_DUMP) === NLM_F_DUMP) throw new Error(`${r.op}: dump requests cannot be batched`);
      if (!(flags & NLM_F_ACK)) throw new Error(`${r.op}: netlink request without NLM_F_ACK`);
      if (m.length % 4 !== 0) throw new Error(`${r.op}: netlink message length is not 4-byte aligned`);
      const seq = (nextSeq = (nextSeq + 1) & 0x7fffffff);
      req.set(m, off);
      req.writeUInt32LE(seq, off + 8);
      off += m.length;
      seqs.push(seq);
    }
    return { req, seqs };
  }

  /** Reads until every request of a batch is answered: its replies, or its failure. */
  private collectBatch(reqs: { op: string; target?: string }[], seqs: number[]): (NetlinkReply[] | NetlinkError)[] {
    const lib = netLib();
    const index = new Map(seqs.map((s, i) => [s, i]));
    const out: (NetlinkReply[] | NetlinkError)[] = reqs.map(() => []);
    let pending = reqs.length;
    while (pending > 0) {
      const n = lib.nlRecv(this.fd, this.buf, this.buf.length);
      if (n < 0) throw new SyscallError('recv', -n, errnoName(-n), reqs[0]!.op);
      for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
        const len = this.buf.readUInt32LE(off);
        if (len < NLMSG_HDRLEN || off + len > n) throw new Error(`${reqs[0]!.op}: truncated netlink message`);
        const type = this.buf.readUInt16LE(off + 4);
        const mflags = this.buf.readUInt16LE(off + 6);
        const mseq = this.buf.readUInt32LE(off + 8);
        const payload = Buffer.from(this.buf.subarray(off + NLMSG_HDRLEN, off + len));
        off += (len + 3) & ~3;
        const i = index.get(mseq);
        if (i === undefined) continue; // a late answer to an earlier, timed-out request
        if (type === NLMSG_ERROR) {
          const err = payload.readInt32LE(0);
          if (err !== 0) out[i] = new NetlinkError(reqs[i]!.op, -err, reqs[i]!.target, extackMessage(payload, mflags));
          index.delete(mseq);
          pending -= 1;
          continue;
        }
        (out[i] as NetlinkReply[]).push({ type, flags: mflags, seq: mseq, payload });
      }
    }
    return out;
  }

  /**
   * Sends one request (its seq field is overwritten) and returns every reply message before
   * the ACK / NLMSG_DONE. `op` and `target` only name the failure ("RTM_NEWLINK", "swlab-1").
   * The request must ask for an ACK or a dump, otherwise there is nothing to wait for.
   */
  request(msg: Uint8Array, op: string, target?: string): NetlinkReply[] {
    const { req, seq } = this.prepare(msg, op);
    const sent = netLib().nlSend(this.fd, req, req.length);
    if (sent < 0) throw new SyscallError('sendto', -sent, errnoName(-sent), op);
    return this.collect(seq, op, target);
  }

  private prepare(msg: Uint8Array, op: string): { req: Buffer; seq: number } {
    if (this.closed) throw new Error('netlink socket is closed');
    const req = Buffer.from(msg);
    const flags = req.readUInt16LE(6);
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    if (!dump && !(flags & NLM_F_ACK)) throw new Error(`${op}: netlink request without NLM_F_ACK or NLM_F_DUMP`);
    const seq = (nextSeq = (nextSeq + 1) & 0x7fffffff);
    req.writeUInt32LE(seq, 8);
    return { req, seq };
  }

  private collect(seq: number, op: string, target?: string): NetlinkReply[] {
    const lib = netLib();
    const replies: NetlinkReply[] = [];
    for (;;) {
      const n = lib.nlRecv(this.fd, this.buf, this.buf.length);
      if (n < 0) throw new SyscallError('recv', -n, errnoName(-n), op);
      for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
        const len = this.buf.readUInt32LE(off);
        if (len < NLMSG_HDRLEN || off + len > n) throw new Error(`${op}: truncated netlink message`);
        const type = this.buf.readUInt16LE(off + 4);
        const mflags = this.buf.readUInt16LE(off + 6);
        const mseq = this.buf.readUInt32LE(off + 8);
        const payload = Buffer.from(this.buf.subarray(off + NLMSG_HDRLEN, off + len));
        off += (len + 3) & ~3;
        if (mseq !== seq) continue; // a late answer to an earlier, timed-out request
        if (type === NLMSG_ERROR) {
          const err = payload.readInt32LE(0);
          if (err === 0) return replies; // the ACK
          throw new NetlinkError(op, -err, target, extackMessage(payload, mflags));
        }
        if (type === NLMSG_DONE) {
          const err = payload.length >= 4 ? payload.readInt32LE(0) : 0;
          if (err < 0) throw new NetlinkError(op, -err, target);
          return replies;
        }
        replies.push({ type, flags: mflags, seq: mseq, payload });
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    netLib().close(this.fd);
  }
}

/** Opens a socket (optionally in a namespace), runs fn, always closes. */
export function withNetlink<T>(netnsPath: string | undefined, fn: (s: NetlinkSocket) => T): T {
  const s = NetlinkSocket.open(netnsPath);
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

// nlmsgerr = { int error; struct nlmsghdr msg; [payload unless CAP_ACK] } then TLVs.
function extackMessage(payload: Buffer, flags: number): string | undefined {
  if (!(flags & NLM_F_ACK_TLVS) || payload.length < 20) return undefined;
  const origLen = payload.readUInt32LE(4);
  // With NETLINK_CAP_ACK only the original header is echoed; without it, the whole request.
  let off = 4 + (origLen >= NLMSG_HDRLEN && 4 + origLen <= payload.length && !(flags & 0x100) ? origLen : NLMSG_HDRLEN);
  off = (off + 3) & ~3;
  while (off + 4 <= payload.length) {
    const alen = payload.readUInt16LE(off);
    const atype = payload.readUInt16LE(off + 2) & 0x3fff;
    if (alen < 4) break;
    if (atype === NLMSGERR_ATTR_MSG) return payload.subarray(off + 4, off + alen).toString('utf8').replace(/\0+$/, '');
    off += (alen + 3) & ~3;
  }
  return undefined;
}
