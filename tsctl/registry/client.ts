// A client of the OCI distribution API (the registry side of `docker pull`): manifests and
// blobs of one repository, with token (Bearer) and basic auth as the registry's 401 asks.
// Every failure is a RegistryError of one line: the registry, what was asked, why.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseChallenge, tokenUrl } from './auth.js';
import { ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';
import { schemeFor } from './reference.js';
import { request, type Reply } from './http.js';

export class RegistryError extends Error {
  constructor(readonly registry: string, message: string, options?: { cause?: unknown }) {
    super(`registry ${registry}: ${message}`, options);
    this.name = 'RegistryError';
  }
}

export interface RegistryOptions {
  insecure?: boolean;
  username?: string;
  password?: string;
  /** Until the reply's headers; a blob's body then streams for as long as it takes. */
  timeoutMs?: number;
}

const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').slice(0, 200);

export class RegistryClient {
  private base: string;
  private authorization?: string;

  constructor(readonly host: string, readonly repository: string, private o: RegistryOptions = {}) {
    this.base = `${schemeFor(host, o.insecure ?? false)}://${host}/v2/`;
  }

  /** A manifest by tag or digest: its bytes (bounded), its sha256 digest (checked against a digest reference) and type. */
  async manifest(reference: string): Promise<{ bytes: Buffer; digest: string; mediaType: string }> {
    const what = `manifest ${this.repository}:${reference}`;
    const res = await this.get(`${this.repository}/manifests/${reference}`, what, { accept: ACCEPT });
    const bytes = await readBounded(res, MAX_MANIFEST_BYTES, () => new RegistryError(this.host, `${what} is larger than ${MAX_MANIFEST_BYTES} bytes: refused`));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryError(this.host, `${what} arrived with digest ${digest}: refused`);
    const said = res.headers.get('docker-content-digest');
    if (said && said.startsWith('sha256:') && said !== digest) throw new RegistryError(this.host, `${what}: the registry says ${oneLine(said)} but the bytes hash to ${digest}: refused`);
    return { bytes, digest, mediaType: res.headers.get('content-type') ?? '' };
  }

  /** A small blob (a config) in memory, checked against its digest. */
  async blobBytes(digest: string, max: number): Promise<Buffer> {
    const what = `blob ${digest}`;
    const res = await this.blob(digest);
    const bytes = await readBounded(res, max, () => new RegistryError(this.host, `${what} is larger than ${max} bytes: refused`));
    const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (got !== digest) throw new RegistryError(this.host, `${what} arrived with digest ${got}: refused`);
    return bytes;
  }

  /**
   * A blob's reply, its body not yet read (the caller streams and verifies it); from byte
   * `from` on when given (an HTTP Range: a 206 is the rest, a 200 the whole blob again).
   */
  blob(digest: string, from = 0): Promise<Reply> {
    return this.get(`${this.repository}/blobs/${digest}`, `blob ${digest}`, from > 0 ? { range: `bytes=${from}-` } : {}, true);
  }

  /** True when the repository holds the blob (a push skips it). */
  async hasBlob(digest: string): Promise<boolean> {
    const what = `blob ${digest}`;
    const res = await this.send('HEAD', this.base + `${this.repository}/blobs/${digest}`, what, {}, undefined, [404]);
    await drain(res);
    return res.status !== 404;
  }

  /**
   * Uploads one blob in one PUT (the monolithic upload of the distribution API): a POST opens
   * the upload, the PUT to its Location carries the bytes and the digest the registry checks.
   */
  async pushBlob(digest: string, size: number, body: () => Readable): Promise<void> {
    const what = `upload of blob ${digest}`;
    const start = await this.send('POST', this.base + `${this.repository}/blobs/uploads/`, what, { 'content-length': '0' });
    await drain(start);
    await this.upload(start, digest, size, body, what);
  }

  /**
   * Asks the registry to link a blob it holds in repository `from` of the same registry into
   * this one (a cross-repository mount: no bytes sent). True when it did (201); a registry that
   * cannot answers with an upload (202), which then carries the bytes as pushBlob does.
   */
  async mountBlob(digest: string, from: string, size: number, body: () => Readable): Promise<boolean> {
    const what = `mount of blob ${digest} from ${from}`;
    const q = new URLSearchParams({ mount: digest, from });
    const start = await this.send('POST', this.base + `${this.repository}/blobs/uploads/?${q}`, what, { 'content-length': '0' });
    await drain(start);
    if (start.status === 201) return true;
    await this.upload(start, digest, size, body, `upload of blob ${digest}`);
    return false;
  }

  /** The PUT of an upload the registry opened (its Location): the bytes and the digest it checks. */
  private async upload(start: Reply, digest: string, size: number, body: () => Readable, what: string): Promise<void> {
    const loc = start.headers.get('location');
    if (!loc) throw new RegistryError(this.host, `${what}: the registry gave no upload location`);
    const url = new URL(loc, this.base);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RegistryError(this.host, `${what}: upload location ${oneLine(loc)} is not http(s): refused`);
    url.searchParams.set('digest', digest);
    const done = await this.send('PUT', url.href, what, { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body);
    await drain(done);
    const said = done.headers.get('docker-content-digest');
    if (said && said !== digest) throw new RegistryError(this.host, `${what}: the registry stored ${oneLine(said)}: refused`);
  }

  /** Puts a manifest under a tag; the registry's digest of it must be ours. */
  async pushManifest(tag: string, bytes: Buffer, mediaType: string): Promise<string> {
    const what = `manifest ${this.repository}:${tag}`;
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const res = await this.send('PUT', this.base + `${this.repository}/manifests/${tag}`, what, { 'content-type': mediaType }, () => Readable.from([bytes]));
    await drain(res);
    const said = res.headers.get('docker-content-digest');
    if (said && said !== digest) throw new RegistryError(this.host, `${what}: the registry says ${oneLine(said)} but the bytes hash to ${digest}: refused`);
    return digest;
  }

  /** `lean`: a blob's body, read by wire.ts rather than node:http (http.ts). */
  private get(path: string, what: string, headers: Record<string, string>, lean = false): Promise<Reply> {
    return this.send('GET', this.base + path, what, headers, undefined, [], lean);
  }

  /** One request; a 401 is answered (token or basic) and the request made again, its body anew. */
  private async send(method: string, url: string, what: string, headers: Record<string, string>, body?: () => Readable, ok: number[] = [], lean = false): Promise<Reply> {
    let res = await this.fetch(url, what, headers, this.authFor(url), method, body?.(), lean);
    if (res.status === 401) {
      await drain(res);
      await this.authenticate(res, what, method === 'GET' || method === 'HEAD' ? 'pull' : 'pull,push');
      res = await this.fetch(url, what, headers, this.authFor(url), method, body?.(), lean);
      if (res.status === 401) {
        await drain(res);
        throw new RegistryError(this.host, `${what}: access denied (HTTP 401) with the credentials given`);
      }
    }
    if ((res.status < 200 || res.status > 299) && !ok.includes(res.status)) throw new RegistryError(this.host, `${what}: ${await errorText(res)}`);
    return res;
  }

  /** The registry's credentials go to the registry only, never to another origin an upload location names. */
  private authFor(url: string): string | undefined {
    return new URL(url).origin === new URL(this.base).origin ? this.authorization : undefined;
  }

  /**
   * One exchange; a GET or HEAD follows redirects itself (at most 5), to http(s) only,
   * never from https down to http, and from a loopback registry never off this host (a
   * local registry has no business sending the client elsewhere): a refusal is one line.
   */
  private async fetch(url: string, what: string, headers: Record<string, string>, auth: string | undefined, method = 'GET', body?: Readable, lean = false): Promise<Reply> {
    const follow = method === 'GET' || method === 'HEAD';
    for (let hop = 0; ; hop++) {
      const res = await this.exchange(url, what, headers, auth, method, body, lean);
      const loc = res.headers.get('location');
      if (!follow || res.status < 300 || res.status > 399 || res.status === 304 || !loc) return res;
      await drain(res);
      if (hop === 5) throw new RegistryError(this.host, `${what}: more than 5 redirects: refused`);
      let next: URL;
      try { next = new URL(loc, url); } catch { throw new RegistryError(this.host, `${what}: redirect to "${oneLine(loc)}", not a URL: refused`); }
      const from = new URL(url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RegistryError(this.host, `${what}: redirect to ${oneLine(next.protocol)} refused (http or https only)`);
      if (from.protocol === 'https:' && next.protocol === 'http:') throw new RegistryError(this.host, `${what}: redirect from https to plain http (${oneLine(next.origin)}) refused`);
      if (isLoopback(new URL(this.base).hostname) && !isLoopback(next.hostname)) throw new RegistryError(this.host, `${what}: a loopback registry redirected to ${oneLine(next.origin)}, off this host: refused`);
      url = next.href;
      auth = this.authFor(url);
    }
  }

  private async exchange(url: string, what: string, headers: Record<string, string>, auth: string | undefined, method: string, body?: Readable, lean = false): Promise<Reply> {
    // a body that fails (its source refused its bytes) says why, not "cannot reach"
    let bodyError: Error | undefined;
    body?.once('error', (e) => { bodyError = e; });
    try {
      // the timeout bounds the wait for headers only: a body streams for as long as it takes
      return await request(url, { method, headers: { ...headers, ...(auth ? { authorization: auth } : {}) }, timeoutMs: this.o.timeoutMs ?? 30000, lean, ...(body ? { body } : {}) });
    } catch (err) {
      if (bodyError) throw bodyError;
      const e = err as Error & { code?: string };
      // a reply wire.ts could not read is the server's fault, said as such
      if (e.code === 'BADREPLY') throw new RegistryError(this.host, `${what}: ${new URL(url).origin} sent ${oneLine(e.message)}`, { cause: err });
      throw new RegistryError(this.host, `${what}: cannot reach ${new URL(url).origin}: ${oneLine(e.code === 'TIMEOUT' ? e.message : e.code ?? e.message)}`, { cause: err });
    }
  }

  /** Answers a 401's challenge: a token from the realm (Bearer) or the user's password (Basic). */
  private async authenticate(res: Reply, what: string, actions = 'pull'): Promise<void> {
    const c = parseChallenge(res.headers.get('www-authenticate') ?? '');
    const basic = this.o.username !== undefined ? `Basic ${Buffer.from(`${this.o.username}:${this.o.password ?? ''}`).toString('base64')}` : undefined;
    if (c?.scheme === 'basic') {
      if (!basic) throw new RegistryError(this.host, `${what}: the registry needs a login (give --username and --password-stdin)`);
      this.authorization = basic;
      return;
    }
    if (c?.scheme !== 'bearer') throw new RegistryError(this.host, `${what}: HTTP 401 without a Bearer or Basic challenge`);
    const url = tokenUrl(c, `repository:${this.repository}:${actions}`);
    if (typeof url === 'string') throw new RegistryError(this.host, `${what}: ${url}`);
    const t = await this.fetch(url.href, `token for ${what}`, {}, basic);
    if (t.status === 401 || t.status === 403) {
      await drain(t);
      throw new RegistryError(this.host, `${what}: the token service refused ${basic ? 'the credentials given' : 'an anonymous pull (give --username and --password-stdin)'} (HTTP ${t.status})`);
    }
    if (t.status < 200 || t.status > 299) throw new RegistryError(this.host, `token for ${what}: ${await errorText(t)}`);
    const body = await readBounded(t, 1 << 20, () => new RegistryError(this.host, `token for ${what}: reply over 1 MiB`));
    let token: unknown;
    try {
      const j = JSON.parse(body.toString('utf8')) as { token?: unknown; access_token?: unknown };
      token = j.token ?? j.access_token;
    } catch { /* below */ }
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) throw new RegistryError(this.host, `token for ${what}: the token service replied without a token`);
    this.authorization = `Bearer ${token}`;
  }
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A reply body, at most `max` bytes (a lying Content-Length changes nothing). */
export async function readBounded(res: Reply, max: number, tooBig: () => Error): Promise<Buffer> {
  const len = Number(res.headers.get('content-length') ?? '0');
  if (len > max) { res.body.destroy(); throw tooBig(); }
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > max) throw tooBig();
      parts.push(c);
    }
  } finally {
    res.body.destroy();
  }
  return Buffer.concat(parts);
}

/** Done with a reply: a small body is read (its socket is kept for the next request), a large or unknown one dropped. */
async function drain(res: Reply): Promise<void> {
  const len = Number(res.headers.get('content-length') ?? 'NaN');
  if (len <= 64 * 1024) res.body.resume(); else res.body.destroy();
}

/** A non-2xx reply as one line: the API's error codes when it sent them, else the status. */
async function errorText(res: Reply): Promise<string> {
  let body: Buffer | undefined;
  try { body = await readBounded(res, 64 * 1024, () => new Error('big')); } catch { /* junk: the status says it */ }
  try {
    const j = JSON.parse(body?.toString('utf8') ?? '') as { errors?: { code?: unknown; message?: unknown }[] };
    const errs = (j.errors ?? []).slice(0, 3).map((e) => `${oneLine(String(e.code ?? '?'))} ${oneLine(String(e.message ?? ''))}`.trim());
    if (errs.length) return `${errs.join('; ')} (HTTP ${res.status})`;
  } catch { /* not the API's error body */ }
  return `HTTP ${res.status} ${oneLine(res.statusText)} with no registry error in the reply`;
}
