// A tiny structural validator: decoding checks every field before anything acts on it.
// Hand-written because the schema is small and errors must name the exact field.

export class ValidationError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'ValidationError';
  }
}

export type Check<T> = (v: unknown, field: string) => T;

export const str = (max = 4096, re?: RegExp): Check<string> => (v, f) => {
  if (typeof v !== 'string') throw new ValidationError(f, `expected a string, got ${typeOf(v)}`);
  if (v.length > max) throw new ValidationError(f, `longer than ${max} characters`);
  if (v.includes('\0')) throw new ValidationError(f, 'contains a NUL byte');
  if (re && !re.test(v)) throw new ValidationError(f, `"${v.slice(0, 80)}" does not match ${re}`);
  return v;
};

export const int = (min: number, max: number): Check<number> => (v, f) => {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ValidationError(f, `expected an integer, got ${typeOf(v)}`);
  if (v < min || v > max) throw new ValidationError(f, `${v} is out of range ${min}..${max}`);
  return v;
};

export const num = (min: number, max: number): Check<number> => (v, f) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValidationError(f, `expected a number, got ${typeOf(v)}`);
  if (v < min || v > max) throw new ValidationError(f, `${v} is out of range ${min}..${max}`);
  return v;
};

export const bool: Check<boolean> = (v, f) => {
  if (typeof v !== 'boolean') throw new ValidationError(f, `expected a boolean, got ${typeOf(v)}`);
  return v;
};

export const oneOf = <T extends string>(...vals: T[]): Check<T> => (v, f) => {
  if (!vals.includes(v as T)) throw new ValidationError(f, `expected one of ${vals.join(', ')}, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v as T;
};

export const arr = <T>(item: Check<T>, max: number): Check<T[]> => (v, f) => {
  if (!Array.isArray(v)) throw new ValidationError(f, `expected an array, got ${typeOf(v)}`);
  if (v.length > max) throw new ValidationError(f, `more than ${max} items`);
  return v.map((x, i) => item(x, `${f}[${i}]`));
};

export const opt = <T>(c: Check<T>): Check<T | undefined> => (v, f) => (v === undefined || v === null ? undefined : c(v, f));

type Shape = Record<string, Check<unknown>>;
type Out<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

/** Validates an object; unknown keys are dropped so that nothing unchecked reaches the actors. */
export const obj = <S extends Shape>(shape: S): Check<Out<S>> => (v, f) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(f, `expected an object, got ${typeOf(v)}`);
  const out: Record<string, unknown> = {};
  for (const [k, c] of Object.entries(shape)) {
    const r = c((v as Record<string, unknown>)[k], f ? `${f}.${k}` : k);
    if (r !== undefined) out[k] = r;
  }
  return out as Out<S>;
};

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}
