// A child process for the checkpoint's fault-injection test: writes a known sequence of
// changes to a Checkpoint and prints each one once it is durable ("ok <i>" after a record
// write returned, "seen <i>" after a position's batch is in the file). The test arms a
// failpoint (SWARMLITE_FAILPOINTS) so this dies mid-way, then checks what a reopen reads.
//   node checkpoint-writer.js <dir> <from> <to>
import { Checkpoint, type ContainerRecord, type PendingEvent } from '../../agent/pipeline/checkpoint.js';

export const ENTITIES = 40;
export const entity = (i: number) => `c${i % ENTITIES}`;
export const eventId = (i: number) => `ev${i}`;
/** Changes whose promised event stays promised (never kept): recovery would append those. */
export const keptLater = (i: number) => i % 4 !== 0;
export const seenKey = (i: number) => `rejected:k${i % 7}`;
export const record = (i: number): ContainerRecord => ({
  lastSeq: i, requestId: `req${i}`, reported: i % 5 === 0 ? 'exited' : 'running', pid: i,
  spec: { name: `n${i}`, image: 'busybox', imageDigest: `sha256:${'c'.repeat(64)}`, args: ['sleep', String(i)], env: [`I=${i}`], hostname: 'h', workdir: '/', network: 'none', autoRemove: false },
});
export const promised = (i: number): PendingEvent => ({ id: eventId(i), type: 'ContainerStarted', entity: entity(i), data: { pid: i, receivedAt: i, runningAt: i }, cause: `req${i}` });

async function main(): Promise<void> {
  const [dir, from, to] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  const cp = await Checkpoint.open(dir, { warn: (m) => process.stdout.write(`warn ${m}\n`) });
  for (let i = from; i <= to; i++) {
    cp.set(entity(i), record(i), [promised(i)]);
    process.stdout.write(`ok ${i}\n`); // pipes are synchronous on Linux: printed means written
    if (keptLater(i)) cp.kept(entity(i), [eventId(i)]);
    if (i % 25 === 0) { // a position waits for its 20 ms batch: not too many
      cp.markSeen(seenKey(i), i);
      await cp.whenSaved();
      process.stdout.write(`seen ${i}\n`);
    }
    if (i % 10 === 0) await new Promise((r) => setImmediate(r)); // a compaction runs in between
  }
  cp.close();
  process.stdout.write('done\n');
}

if (process.argv[1]?.endsWith('checkpoint-writer.js')) {
  main().catch((err) => { process.stdout.write(`error ${(err as Error).message}\n`); process.exit(1); });
}
