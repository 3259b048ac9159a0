// The controller's lines about events it does not fold. Any NATS client that may publish can
// send junk, so these lines are attacker-driven: each is made printable (a subject or a
// decoder's message may hold terminal escapes) and at most BURST are written per window, the
// rest counted and said in one line when the window ends. The log itself keeps every event;
// `tsctl audit verify` reports each one with its position.

/** Lines written per window before the rest are only counted. */
export const BURST = 20;
export const WINDOW_MS = 10_000;

/** `s` with every character outside printable ASCII as '?', at most `max` long. Pure. */
export const printable = (s: string, max = 200): string => s.slice(0, max).replace(/[^\x20-\x7e]/g, '?');

export class ProblemLog {
  private shown = 0;
  private hidden = 0;
  private windowEnd = 0;

  constructor(private readonly write: (line: string) => void = (l) => console.error(l), private readonly now: () => number = Date.now, private readonly windowMs = WINDOW_MS) {}

  /** Writes `line` (made printable) unless this window's burst is spent. */
  say(line: string): void {
    const t = this.now();
    if (t >= this.windowEnd) this.flush(t);
    if (this.shown < BURST) { this.shown += 1; this.write(printable(line, 400)); return; }
    // the count is said when the window ends, even if nothing more comes
    if (this.hidden++ === 0) { this.timer = setTimeout(() => this.flush(), Math.max(0, this.windowEnd - t)); this.timer.unref(); }
  }

  private timer: NodeJS.Timeout | undefined;

  /** Says how many lines the window that ended held back, and starts a new window. */
  flush(t = this.now()): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.hidden) this.write(`controller: ${this.hidden} more events not folded in ${this.windowMs / 1000} s (not shown; tsctl audit verify lists each)`);
    this.shown = 0;
    this.hidden = 0;
    this.windowEnd = t + this.windowMs;
  }
}
