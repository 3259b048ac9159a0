// koffi, configured once before any library is loaded (koffi refuses a change after that).
// Every module of native/ imports koffi from here, never 'koffi' itself.
//
// An async call (fn.async) runs on a libuv worker with a stack and a heap of its own. koffi
// keeps `resident_async_pools` of those (default 4) and maps a fresh pair for every call
// beyond them (mmap twice, touched, munmap twice when it returns). A burst of removals has
// 20-40 such calls in flight (umounts, tree removals, namespace unmounts, the link round), so
// most calls mapped and unmapped; each munmap of touched pages flushes the TLB of every CPU
// running one of the agent's threads (an IPI round, dear with page-table isolation): 100
// `rm -f` made ~1,000 mmap and ~1,000 munmap, the munmaps ~9% of the agent's main thread.
// 16 is koffi's most (its pool array holds 17, one for sync calls); each is 128 KiB of
// stack and of heap reserved, of which a call touches a few pages.
import koffi from 'koffi';

const RESIDENT_ASYNC_POOLS = 16;

try {
  koffi.config({ resident_async_pools: RESIDENT_ASYNC_POOLS });
} catch { /* a library was loaded before this module (not through native/): koffi's defaults then */ }

export default koffi;
