// One error convention for the whole module: what failed, on which path, and the
// kernel's errno name, so a caller can tell EBUSY (tasks left) from ENOENT (gone).

export class CgroupError extends Error {
  constructor(message: string, readonly path: string, readonly code?: string, options?: { cause?: unknown }) {
    super(code ? `${message}: ${code}` : message, options);
    this.name = 'CgroupError';
  }

  /** Wraps a Node fs error, keeping its errno name and the path it was about. */
  static from(op: string, path: string, err: unknown): CgroupError {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return new CgroupError(`cgroup: ${op} ${path} failed`, path, code ?? 'EUNKNOWN', { cause: err });
  }
}

/** remove() found tasks still in the group and was not asked to kill them. */
export class CgroupBusyError extends CgroupError {
  constructor(path: string, readonly pids: number[]) {
    super(`cgroup: ${path} still has ${pids.length} process${pids.length === 1 ? '' : 'es'} (${pids.slice(0, 8).join(', ')}${pids.length > 8 ? ', …' : ''}); stop them first or remove with { kill: true }`, path, 'EBUSY');
    this.name = 'CgroupBusyError';
  }
}

/** A limit was asked for but the controller that enforces it is not available on this host. */
export class CgroupUnsupportedError extends CgroupError {
  constructor(readonly controller: string, what: string, root: string) {
    super(`cgroup: controller ${controller} is not available under ${root}; ${what} cannot be enforced on this node`, root, 'ENOTSUP');
    this.name = 'CgroupUnsupportedError';
  }
}
