// A tiny structural validator: decoding checks every field before anything acts on it.
// Hand-written because the schema is small and errors must name the exact field.
// Every check is a function of a decoded value, and also reads straight from msgpack bytes
// (`read`, msgpack.ts) with the same rules and the same errors: decoding an event is then
// one walk over its bytes. A read that meets a type it does not expect decodes that value
// generically and hands it to the function, so both paths say the same thing.
import { KeyTable, Reader, isNot } from './msgpack.js';

export class ValidationError extends Error {
  constructor(readonly field: string, readonly problem: string) {
    super(field ? `${field}: ${problem}` : problem);
    this.name = 'ValidationError';
  }
}

/** The same error one level down: reads name fields relative to their parent, which prefixes its key. */
export function within(prefix: string, e: ValidationError): ValidationError {
  const field = e.field === '' ? prefix : e.field.startsWith('[') ? prefix + e.field : prefix ? `${prefix}.${e.field}` : e.field;
  return new ValidationError(field, e.problem);
}

export type Check<T> = ((v: unknown, field: string) => T) & { read?: (r: Reader) => T };

/** Reads one value with `c`: its fast path, or the generic value through its function. */
export function readWith<T>(c: Check<T>, r: Reader): T {
  return c.read ? c.read(r) : c(r.value(), '');
}

const withRead = <T>(f: (v: unknown, field: string) => T, read: (r: Reader) => T): Check<T> => Object.assign(f, { read });

export const str = (max = 4096, re?: RegExp): Check<string> => {
  const check = (v: string, f: string): string => {
    if (v.length > max) throw new ValidationError(f, `longer than ${max} characters`);
    if (v.includes('\0')) throw new ValidationError(f, 'contains a NUL byte');
    if (re && !re.test(v)) throw new ValidationError(f, `${JSON.stringify(v.slice(0, 80))} does not match ${re}`); // quoted: one line whatever it holds
    return v;
  };
  const fn = (v: unknown, f: string): string => {
    if (typeof v !== 'string') throw new ValidationError(f, `expected a string, got ${typeOf(v)}`);
    return check(v, f);
  };
  return withRead(fn, (r) => {
    const s = r.str();
    return isNot(s) ? fn(r.value(), '') : check(s, '');
  });
};

export const int = (min: number, max: number): Check<number> => {
  const fn = (v: unknown, f: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new ValidationError(f, `expected an integer, got ${typeOf(v)}`);
    if (v < min || v > max) throw new ValidationError(f, `${v} is out of range ${min}..${max}`);
    return v;
  };
  return withRead(fn, (r) => {
    const x = r.num();
    if (!isNot(x) && Number.isInteger(x) && x >= min && x <= max) return x;
    return fn(isNot(x) ? r.value() : x, '');
  });
};

export const num = (min: number, max: number): Check<number> => {
  const fn = (v: unknown, f: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValidationError(f, `expected a number, got ${typeOf(v)}`);
    if (v < min || v > max) throw new ValidationError(f, `${v} is out of range ${min}..${max}`);
    return v;
  };
  return withRead(fn, (r) => {
    const x = r.num();
    if (!isNot(x) && x >= min && x <= max) return x; // NaN fails both comparisons; ±Infinity is out of any finite range
    return fn(isNot(x) ? r.value() : x, '');
  });
};

const boolFn = (v: unknown, f: string): boolean => {
  if (typeof v !== 'boolean') throw new ValidationError(f, `expected a boolean, got ${typeOf(v)}`);
  return v;
};
export const bool: Check<boolean> = withRead(boolFn, (r) => {
  const b = r.bool();
  return isNot(b) ? boolFn(r.value(), '') : b;
});

export const oneOf = <T extends string>(...vals: T[]): Check<T> => {
  const fn = (v: unknown, f: string): T => {
    if (!vals.includes(v as T)) throw new ValidationError(f, `expected one of ${vals.join(', ')}, got ${JSON.stringify(v)?.slice(0, 40)}`);
    return v as T;
  };
  return withRead(fn, (r) => {
    const s = r.str();
    return fn(isNot(s) ? r.value() : s, '');
  });
};

export const arr = <T>(item: Check<T>, max: number): Check<T[]> => {
  const fn = (v: unknown, f: string): T[] => {
    if (!Array.isArray(v)) throw new ValidationError(f, `expected an array, got ${typeOf(v)}`);
    if (v.length > max) throw new ValidationError(f, `more than ${max} items`);
    return v.map((x, i) => item(x, `${f}[${i}]`));
  };
  return withRead(fn, (r) => {
    const n = r.arrayLen();
    if (isNot(n)) return fn(r.value(), '');
    // refused before reading an item: a long array costs nothing
    if (n > max) throw new ValidationError('', `more than ${max} items`);
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) {
      try { out[i] = readWith(item, r); } catch (e) { throw e instanceof ValidationError ? within(`[${i}]`, e) : e; }
    }
    return out;
  });
};

export const opt = <T>(c: Check<T>): Check<T | undefined> => {
  const fn = (v: unknown, f: string): T | undefined => (v === undefined || v === null ? undefined : c(v, f));
  return withRead(fn, (r) => (r.nil() ? undefined : readWith(c, r)));
};

type Shape = Record<string, Check<unknown>>;
type Out<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

/**
 * Validates an object; unknown keys are dropped so that nothing unchecked reaches the actors.
 * Read from bytes, a key given twice is refused (the function form cannot see it: a decoded
 * map keeps the last), and the result keeps the shape's key order, as the function's does.
 */
export const obj = <S extends Shape>(shape: S): Check<Out<S>> => {
  const entries = Object.entries(shape);
  const keys = entries.map(([k]) => k);
  const checks = entries.map(([, c]) => c);
  // made on the first read from bytes: a process builds every schema at load (~120 of them in
  // tsctl) and decodes with a few, so eager tables were ~2 ms of every tsctl call's start
  let table: KeyTable | undefined;
  const fn = (v: unknown, f: string): Out<S> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(f, `expected an object, got ${typeOf(v)}`);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const r = checks[i]!((v as Record<string, unknown>)[k], f ? `${f}.${k}` : k);
      if (r !== undefined) out[k] = r;
    }
    return out as Out<S>;
  };
  return withRead(fn, (r) => {
    const n = r.mapLen();
    if (isNot(n)) return fn(r.value(), '');
    const vals = new Array<unknown>(keys.length);
    const t = (table ??= new KeyTable(keys));
    // which keys came: bits of a number for a shape of up to 30 keys (a typed array per object was
    // a noticeable share of a replay's decode), an array beyond
    let bits = 0;
    const many = keys.length > 30 ? new Uint8Array(keys.length) : undefined;
    for (let j = 0; j < n; j++) {
      const i = r.keyIn(t);
      if (i < 0) { r.skip(); continue; }
      if (many ? many[i] : bits & (1 << i)) throw new ValidationError(keys[i]!, 'given twice');
      if (many) many[i] = 1; else bits |= 1 << i;
      try { vals[i] = readWith(checks[i]!, r); } catch (e) { throw e instanceof ValidationError ? within(keys[i]!, e) : e; }
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      if (!(many ? many[i] : bits & (1 << i))) {
        try { vals[i] = checks[i]!(undefined, ''); } catch (e) { throw e instanceof ValidationError ? within(keys[i]!, e) : e; }
      }
      if (vals[i] !== undefined) out[keys[i]!] = vals[i];
    }
    return out as Out<S>;
  });
};

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}
