// libnftables through koffi: the agent's firewall changes go through the library nft(8) itself
// uses, so a whole command buffer is one netlink transaction (atomic) and errors come back as
// text we keep instead of printing.
import koffi from './koffi.js';

const NFT_CTX_DEFAULT = 0;
const NFT_CTX_OUTPUT_JSON = 1 << 4;

/** libnftables rejected a command buffer; `detail` is its error text (with the offending line marked). */
export class NftError extends Error {
  constructor(readonly rc: number, readonly detail: string, readonly commands: string) {
    const first = detail.split('\n').find((l) => l.trim() !== '') ?? `exit code ${rc}`;
    super(`libnftables: ${first.trim()}`);
    this.name = 'NftError';
  }
}

interface Lib {
  ctxNew(flags: number): unknown;
  bufferOutput(ctx: unknown): number;
  bufferError(ctx: unknown): number;
  setFlags(ctx: unknown, flags: number): void;
  getFlags(ctx: unknown): number;
  run(ctx: unknown, buf: string): number;
  output(ctx: unknown): string;
  error(ctx: unknown): string;
}

let lib: Lib | undefined;
let ctx: unknown;

function open(): { lib: Lib; ctx: unknown } {
  if (!lib) {
    const l = koffi.load('libnftables.so.1');
    lib = {
      ctxNew: l.func('void *nft_ctx_new(uint32_t flags)'),
      bufferOutput: l.func('int nft_ctx_buffer_output(void *ctx)'),
      bufferError: l.func('int nft_ctx_buffer_error(void *ctx)'),
      setFlags: l.func('void nft_ctx_output_set_flags(void *ctx, unsigned int flags)'),
      getFlags: l.func('unsigned int nft_ctx_output_get_flags(void *ctx)'),
      run: l.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
      output: l.func('const char *nft_ctx_get_output_buffer(void *ctx)'),
      error: l.func('const char *nft_ctx_get_error_buffer(void *ctx)'),
    };
  }
  if (!ctx) {
    // One context for the process: creating one loads nft's caches, reusing it is cheaper.
    const c = lib.ctxNew(NFT_CTX_DEFAULT);
    if (!c) throw new NftError(-1, 'nft_ctx_new failed', '');
    if (lib.bufferOutput(c) !== 0 || lib.bufferError(c) !== 0) throw new NftError(-1, 'cannot buffer libnftables output', '');
    ctx = c;
  }
  return { lib, ctx };
}

/**
 * Runs an nft command buffer (nft(8) syntax, or JSON with json: true) as one transaction and
 * returns what nft would print. Throws NftError with libnftables' message on failure.
 */
export function nftRun(commands: string, opts: { json?: boolean } = {}): string {
  const { lib: l, ctx: c } = open();
  const flags = l.getFlags(c);
  l.setFlags(c, opts.json ? flags | NFT_CTX_OUTPUT_JSON : flags & ~NFT_CTX_OUTPUT_JSON);
  const rc = l.run(c, commands);
  // Both getters rewind their buffer, so read them right after every run.
  const out = l.output(c) ?? '';
  const err = l.error(c) ?? '';
  if (rc !== 0) throw new NftError(rc, err, commands);
  return out;
}
