// A layer object that is not in the image store yet may be on its way: a pull served by the
// warm tsctl answers once its layers are verified and puts them after (tsctl/image-pull.ts).
// Its readers (an agent starting a container, save, push, build FROM) wait for it a while
// before they call it missing.
/** How long a reader waits for a missing object (SWARMLITE_LAYER_WAIT seconds, default 60). */
export function layerWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.SWARMLITE_LAYER_WAIT);
  return (s > 0 ? s : 60) * 1000;
}

/**
 * The object's info once it is there (`info` answers null, or a delete's marker, while it is
 * not), asked every `everyMs`; null when it is still missing after `ms`.
 */
export async function objectWhenThere<T extends { deleted: boolean }>(info: () => Promise<T | null>, ms: number, everyMs = 200): Promise<T | null> {
  const until = Date.now() + ms;
  for (;;) {
    const i = await info();
    if (i && !i.deleted) return i;
    if (Date.now() >= until) return null;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
