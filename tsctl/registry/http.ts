// One HTTP exchange with a registry on node:http(s), not fetch: fetch loads undici on its
// first call (~65 ms of CPU per tsctl process) and moves a blob's bytes through web streams
// (2x the CPU of node:http for the same 32 MB in a side-by-side test). Redirects are not
// followed here (the client decides which it follows); the body is a Node stream, and
// nothing decodes it (tsctl sends no Accept-Encoding). Keep-alive sockets are unref'd by
// Node's agent while idle, so they hold no process open.
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { get } from './wire.js';

export interface Reply {
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  body: Readable;
}

const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

export class HttpError extends Error {
  constructor(message: string, readonly code: string | undefined) { super(message); this.name = 'HttpError'; }
}

/**
 * Sends the request; resolves at the reply's headers (within `timeoutMs`), the body unread.
 * `lean`: a GET or HEAD of a blob, read by wire.ts (half the CPU of node:http per byte).
 */
export function request(url: string, o: { method: string; headers: Record<string, string>; body?: Readable; timeoutMs: number; lean?: boolean }): Promise<Reply> {
  if (o.lean && !o.body && (o.method === 'GET' || o.method === 'HEAD')) return get(url, { method: o.method, headers: o.headers, timeoutMs: o.timeoutMs });
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise<Reply>((resolve, reject) => {
    let settled = false;
    const req = mod.request(u, { method: o.method, headers: o.headers, agent: u.protocol === 'https:' ? agents.https : agents.http }, (res) => {
      settled = true;
      clearTimeout(timer);
      resolve({
        status: res.statusCode ?? 0,
        statusText: res.statusMessage ?? '',
        headers: { get: (n) => { const v = res.headers[n.toLowerCase()]; return v === undefined ? null : Array.isArray(v) ? v.join(', ') : String(v); } },
        body: res,
      });
    });
    const timer = setTimeout(() => req.destroy(new HttpError(`no reply within ${o.timeoutMs / 1000} s`, 'TIMEOUT')), o.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!settled) { settled = true; reject(e instanceof HttpError ? e : new HttpError(e.message, e.code)); }
    });
    if (o.body) {
      o.body.on('error', (e) => req.destroy(e));
      o.body.pipe(req);
    } else {
      req.end();
    }
  });
}
