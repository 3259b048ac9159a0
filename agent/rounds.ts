// Work done in rounds: what is asked for while a round runs waits for the next one and goes
// in it together. A round of one starts at once, so a lone request waits for nothing; under
// a burst the rounds grow by themselves. Used where the kernel does many things at the cost
// of one (a group delete of links, network/reaper.ts) or a file is written once for many.
export class Rounds<T> {
  private waiting: { items: T[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  private running = false;

  /** `work` does one round and returns the items it could not do, with why. */
  constructor(private readonly work: (items: T[]) => Promise<Map<T, Error>>) {}

  /** Resolves once a round did all of `items`; rejects with the first failure among them. */
  add(items: T[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ items, resolve, reject });
      // started after this turn's synchronous code: asks made together go in one round
      if (!this.running) { this.running = true; queueMicrotask(() => void this.run()); }
    });
  }

  private async run(): Promise<void> {
    try {
      while (this.waiting.length) {
        const round = this.waiting.splice(0);
        let failed: Map<T, Error>;
        try { failed = await this.work([...new Set(round.flatMap((w) => w.items))]); } catch (err) {
          for (const w of round) w.reject(err as Error);
          continue;
        }
        for (const w of round) {
          const err = w.items.map((i) => failed.get(i)).find(Boolean);
          if (err) w.reject(err); else w.resolve();
        }
      }
    } finally { this.running = false; }
  }
}
