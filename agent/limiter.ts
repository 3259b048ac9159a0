// At most `max` tasks at once, the rest in arrival order. Removals hand their slow calls to
// libuv's thread pool (agent/threadpool.ts sizes it); a burst of 100 removals must not take
// every thread, or a start's own calls (the spawn, its files) would queue behind them.
export class Limiter {
  private active = 0;
  private waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`limit ${max} must be a whole number >= 1`);
  }

  /** `first`: ahead of every waiting task (a lone client waits on it; see ContainerHost.remove). */
  async run<T>(f: () => Promise<T> | T, first = false): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => (first ? this.waiting.unshift(r) : this.waiting.push(r)));
    else this.active++;
    try { return await f(); } finally {
      const next = this.waiting.shift();
      if (next) next(); else this.active--; // the slot passes straight to the next task
    }
  }
}
