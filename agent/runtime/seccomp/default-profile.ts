// Docker's default seccomp profile (moby profiles/seccomp/default.json): the data, as a
// specification, and its resolution for one container, as moby's seccomp.GetDefaultProfile
// does: rules whose `includes` (capabilities, architectures) the container has are kept,
// rules whose `excludes` it has are dropped. The result is the OCI linux.seccomp object
// that goes into config.json (so `runc run -b` enforces the same filter) and that
// ./compile.ts turns into a cBPF program.
import type { OciSeccomp, OciSeccompRule } from './types.js';

interface ProfileRule extends OciSeccompRule {
  includes?: { caps?: string[]; arches?: string[] };
  excludes?: { caps?: string[]; arches?: string[] };
}

const words = (s: string) => s.trim().split(/\s+/);

/** Always allowed. */
const ALLOWED = words(`
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`);

const ALLOW = 'SCMP_ACT_ALLOW' as const;
const caps = (...c: string[]) => ({ caps: c });

/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: clone may make none without CAP_SYS_ADMIN. */
export const CLONE_NAMESPACE_FLAGS = 0x7e020000;

const RULES: ProfileRule[] = [
  { names: ALLOWED, action: ALLOW },
  { names: ['process_vm_readv', 'process_vm_writev', 'ptrace'], action: ALLOW }, // minKernel 4.8
  // AF_VSOCK (40) reaches the host across the VM boundary.
  { names: ['socket'], action: ALLOW, args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] },
  ...[0, 8, 0x20000, 0x20008, 0xffffffff].map((v): ProfileRule => ({
    names: ['personality'], action: ALLOW, args: [{ index: 0, value: v, op: 'SCMP_CMP_EQ' }],
  })),
  { names: ['sync_file_range2', 'swapcontext'], action: ALLOW, includes: { arches: ['ppc64le'] } },
  { names: ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'], action: ALLOW, includes: { arches: ['arm', 'arm64'] } },
  { names: ['arch_prctl'], action: ALLOW, includes: { arches: ['amd64', 'x32'] } },
  { names: ['modify_ldt'], action: ALLOW, includes: { arches: ['amd64', 'x32', 'x86'] } },
  { names: ['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr'], action: ALLOW, includes: { arches: ['s390', 's390x'] } },
  { names: ['riscv_flush_icache'], action: ALLOW, includes: { arches: ['riscv64'] } },
  { names: ['open_by_handle_at'], action: ALLOW, includes: caps('CAP_DAC_READ_SEARCH') },
  {
    names: words(`bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
      move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare`),
    action: ALLOW, includes: caps('CAP_SYS_ADMIN'),
  },
  {
    names: ['clone'], action: ALLOW, args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }],
    excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] },
  },
  {
    names: ['clone'], action: ALLOW, args: [{ index: 1, value: CLONE_NAMESPACE_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }],
    includes: { arches: ['s390', 's390x'] }, excludes: caps('CAP_SYS_ADMIN'),
  },
  // ENOSYS, not EPERM: glibc then falls back to clone(), whose flags the rule above can see.
  { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: caps('CAP_SYS_ADMIN') },
  { names: ['reboot'], action: ALLOW, includes: caps('CAP_SYS_BOOT') },
  { names: ['chroot'], action: ALLOW, includes: caps('CAP_SYS_CHROOT') },
  { names: ['delete_module', 'init_module', 'finit_module'], action: ALLOW, includes: caps('CAP_SYS_MODULE') },
  { names: ['acct'], action: ALLOW, includes: caps('CAP_SYS_PACCT') },
  { names: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'], action: ALLOW, includes: caps('CAP_SYS_PTRACE') },
  { names: ['iopl', 'ioperm'], action: ALLOW, includes: caps('CAP_SYS_RAWIO') },
  { names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'], action: ALLOW, includes: caps('CAP_SYS_TIME') },
  { names: ['vhangup'], action: ALLOW, includes: caps('CAP_SYS_TTY_CONFIG') },
  { names: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'], action: ALLOW, includes: caps('CAP_SYS_NICE') },
  { names: ['syslog'], action: ALLOW, includes: caps('CAP_SYSLOG') },
  { names: ['bpf'], action: ALLOW, includes: caps('CAP_BPF') },
  { names: ['perf_event_open'], action: ALLOW, includes: caps('CAP_PERFMON') },
];

/** Docker's names for the host architecture (Go's GOARCH). */
export function hostArch(): string {
  return ({ x64: 'amd64', ia32: 'x86', arm64: 'arm64', arm: 'arm', s390x: 's390x', ppc64: 'ppc64le', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
}

const ARCH_MAP: Record<string, string[]> = {
  amd64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
};

const memo = new Map<string, OciSeccomp>();
/** Profiles made here: deeply frozen, so a compiled program can be cached by their identity. */
export const RESOLVED_PROFILES = new WeakSet<OciSeccomp>();

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * The default profile for a container with these (bounding) capabilities on `arch`. The
 * same capabilities give the same (frozen) object, so the launch encoder finds its compiled
 * program by identity instead of serialising ~350 names on every start.
 */
export function defaultSeccomp(capabilities: readonly string[], arch = hostArch()): OciSeccomp {
  const key = `${arch} ${[...capabilities].sort().join(',')}`;
  let p = memo.get(key);
  if (!p) {
    p = deepFreeze(resolveProfile(capabilities, arch));
    RESOLVED_PROFILES.add(p);
    if (memo.size >= 64) memo.delete(memo.keys().next().value!);
    memo.set(key, p);
  }
  return p;
}

function resolveProfile(capabilities: readonly string[], arch: string): OciSeccomp {
  const have = new Set(capabilities);
  const applies = (sel: { caps?: string[]; arches?: string[] } | undefined, all: boolean) => {
    if (!sel) return all;
    // includes: every listed capability must be held; excludes: holding any one excludes
    const c = sel.caps ? (all ? sel.caps.every((x) => have.has(x)) : sel.caps.some((x) => have.has(x))) : undefined;
    const a = sel.arches ? sel.arches.includes(arch) : undefined;
    // includes: every given selector must hold; excludes: any given selector excludes.
    return all ? (c ?? true) && (a ?? true) : (c ?? false) || (a ?? false);
  };
  const syscalls = RULES.filter((r) => applies(r.includes, true) && !applies(r.excludes, false)).map((r) => ({
    names: [...r.names], action: r.action,
    ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
    ...(r.args ? { args: r.args.map((a) => ({ ...a })) } : {}),
  }));
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, architectures: [...(ARCH_MAP[arch] ?? [])], syscalls };
}
