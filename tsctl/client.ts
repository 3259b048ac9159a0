// tsctl's transport: JSON request/reply to the controller (api.*) and to agents (agent.*).
import { connect, type NatsConnection } from 'nats';

/** An error tsctl reports as one line and exit code 125. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 125) { super(message); this.name = 'CliError'; }
}

export async function dial(url: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, name: 'tsctl', maxReconnectAttempts: 0, timeout: 3000 });
  } catch (err) {
    throw new CliError(`cannot reach the cluster at ${url}: ${(err as Error).message} (is it up? ops/up starts one; --nats or SWARMLITE_NATS choose another)`);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function call<T = unknown>(nc: NatsConnection, subject: string, body: unknown = {}, timeout = 15000): Promise<T> {
  let m;
  try {
    m = await nc.request(subject, enc.encode(JSON.stringify(body)), { timeout });
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (e.code === '503') throw new CliError(subject.startsWith('api.') ? 'no controller is answering (ops/up starts one)' : `no agent answers on ${subject.split('.')[1]}`);
    if (e.code === 'TIMEOUT') throw new CliError(`${subject} timed out after ${timeout} ms`);
    throw new CliError(`${subject}: ${e.message}`);
  }
  const r = JSON.parse(dec.decode(m.data)) as { ok?: T; error?: string };
  if (r.error !== undefined) throw new CliError(r.error);
  return r.ok as T;
}
