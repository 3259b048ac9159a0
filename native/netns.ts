// Network namespaces as files, and the raw netlink socket calls, from native/build/libswarmlite.so
// (native/src/lib/netns.c). The C side switches namespaces in a short-lived thread so Node's
// own thread never leaves the host namespace.
import koffi from './koffi.js';
import { fileURLToPath } from 'node:url';
import { SyscallError, errnoName } from './errors.js';

const libPath = fileURLToPath(new URL('../../native/build/libswarmlite.so', import.meta.url));

interface Lib {
  netnsCreate(path: string): number;
  netnsDelete(path: string): number;
  /** netnsDelete on a libuv worker thread (umount2 and unlink wait on the mount lock). */
  netnsDeleteAsync(path: string): Promise<number>;
  netnsCreateNl(path: string): number;
  lastStep(): string;
  nlOpen(nspath: string | null): number;
  nlSend(fd: number, buf: Buffer, len: number): number;
  /** The same send on a libuv worker thread: the kernel handles a request inside sendto, and
   *  some (deleting a veth: its unregistration waits for RCU) take tens of ms. */
  nlSendAsync(fd: number, buf: Buffer, len: number): Promise<number>;
  nlRecv(fd: number, buf: Buffer, len: number): number;
  close(fd: number): number;
}

let lib: Lib | undefined;

/** The loaded library; loading is lazy so pure modules importing types never need the .so. */
export function netLib(): Lib {
  if (lib) return lib;
  // The lib path is resolved from dist/native/ in the compiled tree.
  const l = koffi.load(libPath);
  const send = l.func('int swl_nl_send(int fd, const void *buf, int len)') as ((fd: number, buf: Buffer, len: number) => number) & { async: (...a: unknown[]) => void };
  const del = l.func('int swl_netns_delete(const char *path)') as ((path: string) => number) & { async: (...a: unknown[]) => void };
  lib = {
    netnsCreate: l.func('int swl_netns_create(const char *path)'),
    netnsDelete: del,
    netnsDeleteAsync: (path) => new Promise((resolve, reject) => del.async(path, (e: unknown, rc: number) => (e ? reject(e) : resolve(rc)))),
    netnsCreateNl: l.func('int swl_netns_create_nl(const char *path)'),
    lastStep: l.func('const char *swl_netns_last_step(void)'),
    nlOpen: l.func('int swl_nl_open(const char *nspath)'),
    nlSend: send,
    nlSendAsync: (fd, buf, len) => new Promise((resolve, reject) => send.async(fd, buf, len, (e: unknown, rc: number) => (e ? reject(e) : resolve(rc)))),
    nlRecv: l.func('int swl_nl_recv(int fd, void *buf, int len)'),
    close: l.func('int swl_close(int fd)'),
  };
  return lib;
}

function check(rc: number, what: string, path: string): number {
  if (rc >= 0) return rc;
  const step = netLib().lastStep() || what;
  throw new SyscallError(step, -rc, errnoName(-rc), path);
}

/** Creates a new network namespace kept alive by a bind mount on `path` (which must not exist). */
export function createNetns(path: string): void {
  check(netLib().netnsCreate(path), 'netns_create', path);
}

/**
 * createNetns, and a bound NETLINK_ROUTE socket inside the new namespace made by the same
 * thread (one thread on the start path instead of two). Returns the socket's descriptor;
 * wrap it with NetlinkSocket.adopt.
 */
export function createNetnsWithSocket(path: string): number {
  return check(netLib().netnsCreateNl(path), 'netns_create', path);
}

/** Unmounts and unlinks a namespace file; a missing file or mount is not an error. */
export function deleteNetns(path: string): void {
  check(netLib().netnsDelete(path), 'netns_delete', path);
}

/**
 * deleteNetns off the event loop. The C side's step name is one global shared by the threads,
 * so a failure here names the call as a whole ("netns_delete") with its errno.
 */
export async function deleteNetnsAsync(path: string): Promise<void> {
  const rc = await netLib().netnsDeleteAsync(path);
  if (rc < 0) throw new SyscallError('netns_delete', -rc, errnoName(-rc), path);
}
