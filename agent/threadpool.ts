// Imported first by main.ts: libuv reads UV_THREADPOOL_SIZE once, when the pool is first used.
// Its default of 4 is made for CPU work; the agent's pool work is mostly waiting in the kernel
// (a umount's or a link deletion's RCU grace period, rmdir of a cgroup), so more threads than
// cores is right, and removals (limited, agent/limiter.ts) always leave threads for a start.
process.env.UV_THREADPOOL_SIZE ??= '32';
export {};
