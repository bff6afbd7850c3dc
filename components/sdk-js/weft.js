// Weft's JavaScript guest SDK: a pipeline step without raw bindings.
//
//   import { step } from './weft.js';
//   export const task = step(
//     { params: { column: 'string' }, inputs: ['table'], outputs: ['totals'], returns: 'float' },
//     ({ table, totals, column, metrics, log }) => { ... return total; });
//
// Parameters arrive as JS values of their declared type (`int` as a Number, `json` parsed);
// artifacts as `{ name, path }` (an output's `path` is a file named after it inside its
// directory, `dir` the directory); `readText`/`writeText` read and write them through WASI
// (the JS runtime has no file API of its own). A thrown error becomes the task's failure cause
// as `Name: message`, its stack goes to the task log.

import { report } from 'weft:pipeline/metrics@0.1.0';
import { emit } from 'weft:pipeline/log@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

const MAX_CAUSE = 2000;

/** The granted directory holding `path`, and `path` relative to it. */
function locate(path) {
  let best = null;
  for (const [descriptor, root] of getDirectories()) {
    const prefix = root.endsWith('/') ? root : root + '/';
    if ((path === root || path.startsWith(prefix)) && (!best || root.length > best[1].length)) {
      best = [descriptor, root];
    }
  }
  if (!best) {
    throw new Error(`${path}: not under any directory granted to the step`);
  }
  const rel = path === best[1] ? '.' : path.slice(best[1].length).replace(/^\/+/, '');
  return [best[0], rel];
}

/** A pipeline hands every artifact over as a directory; one holding a single file is that file
 * (what the step that wrote it meant). A file, or any other directory, is itself. */
function soleFile(path) {
  const [root, rel] = locate(path);
  let dir;
  try {
    dir = rel === '.' ? root : root.openAt({ symlinkFollow: false }, rel, { directory: true }, { read: true });
  } catch (e) {
    return path; // not a directory
  }
  const names = [];
  const entries = dir.readDirectory();
  for (let e = entries.readDirectoryEntry(); e !== undefined; e = entries.readDirectoryEntry()) {
    if (!e.name.startsWith('.')) names.push(e);
    if (names.length > 1) return path;
  }
  return names.length === 1 && names[0].type === 'regular-file' ? `${path.replace(/\/+$/, '')}/${names[0].name}` : path;
}

/** The bytes of the file at `path` (a granted input, or an output written earlier). */
export function readBytes(path) {
  const [dir, rel] = locate(path);
  const file = dir.openAt({ symlinkFollow: false }, rel, {}, { read: true });
  const chunks = [];
  let offset = 0n;
  for (;;) {
    const [chunk, end] = file.read(65536n, offset);
    chunks.push(chunk);
    offset += BigInt(chunk.length);
    if (end || chunk.length === 0) break;
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function readText(path) {
  return new TextDecoder().decode(readBytes(path));
}

/** Writes `bytes` to `path` (created or truncated) inside a granted output directory. */
export function writeBytes(path, bytes) {
  const [dir, rel] = locate(path);
  const file = dir.openAt({ symlinkFollow: false }, rel, { create: true, truncate: true }, { write: true });
  let offset = 0n;
  while (offset < BigInt(bytes.length)) {
    offset += file.write(bytes.subarray(Number(offset)), offset);
  }
}

export function writeText(path, text) {
  writeBytes(path, new TextEncoder().encode(text));
}

/** The environment variables granted to the step (`--env`), as an object. */
export function env() {
  return Object.fromEntries(getEnvironment());
}

/** Structured log records in the task's log: `log.info('loaded', { rows: 150 })`. */
export const log = Object.fromEntries(
  ['trace', 'debug', 'info', 'warn', 'error'].map((level) => [
    level,
    (message, fields = {}) => emit(level, String(message), Object.entries(fields).map(([k, v]) => [k, String(v)])),
  ]),
);

/** `metrics.log(name, value)` or a series point with `step`. */
export const metrics = {
  log(name, value, step) {
    report(String(name), Number(value), step === undefined ? undefined : BigInt(step));
  },
};

function fromWit(name, type, pv) {
  let v = pv.tag === 'json' ? JSON.parse(pv.val) : pv.val;
  if (typeof v === 'bigint') v = Number(v);
  const ok = {
    string: typeof v === 'string',
    int: typeof v === 'number' && Number.isInteger(v),
    float: typeof v === 'number',
    bool: typeof v === 'boolean',
    json: true,
  }[type];
  if (ok === undefined) throw new TypeError(`parameter ${name}: unknown type ${type}`);
  if (!ok) throw new TypeError(`parameter ${name}: expected ${type}, got ${pv.tag} ${JSON.stringify(String(v))}`);
  return v;
}

function toWit(name, type, v) {
  switch (type) {
    case 'int':
      if (!Number.isInteger(v) && typeof v !== 'bigint') throw new TypeError(`output ${name}: expected int, got ${v}`);
      return { name, value: { tag: 'int', val: BigInt(v) } };
    case 'float':
      return { name, value: { tag: 'float', val: Number(v) } };
    case 'bool':
      return { name, value: { tag: 'boolean', val: Boolean(v) } };
    case 'json':
      return { name, value: { tag: 'json', val: JSON.stringify(v) } };
    default:
      return { name, value: { tag: 'str', val: String(v) } };
  }
}

function argumentsOf(spec, input) {
  const args = { metrics, log };
  const given = new Map(input.params.map((p) => [p.name, p.value]));
  for (const [name, decl] of Object.entries(spec.params ?? {})) {
    const [type, fallback] = Array.isArray(decl) ? decl : [decl, undefined];
    if (given.has(name)) args[name] = fromWit(name, type, given.get(name));
    else if (fallback !== undefined) args[name] = fallback;
    else throw new TypeError(`parameter ${name} was not given and has no default`);
  }
  const granted = (list, kind) => new Map(list.map((a) => [a.name, a.path]));
  const inputs = granted(input.inputs);
  for (const name of spec.inputs ?? []) {
    if (!inputs.has(name)) throw new TypeError(`input artifact ${name} was not granted to the step`);
    const dir = inputs.get(name);
    args[name] = { name, dir, path: soleFile(dir) };
  }
  const outputs = granted(input.outputs);
  for (const name of spec.outputs ?? []) {
    if (!outputs.has(name)) throw new TypeError(`output artifact ${name} was not granted to the step`);
    const dir = outputs.get(name);
    args[name] = { name, dir, path: `${dir.replace(/\/+$/, '')}/${name}` };
  }
  return args;
}

function outputsOf(spec, result) {
  const returns = spec.returns;
  if (returns === undefined) return [];
  if (typeof returns === 'string') return [toWit('Output', returns, result)];
  return Object.entries(returns).map(([name, type]) => {
    if (result == null || !(name in result)) throw new TypeError(`the step's result has no output ${name}`);
    return toWit(name, type, result[name]);
  });
}

function cause(e) {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : `${e}`;
  const line = text.split(/\s+/).join(' ');
  return line.length <= MAX_CAUSE ? line : `${line.slice(0, MAX_CAUSE)} [cut]`;
}

/**
 * The `weft:pipeline/task` export for `fn`, whose signature `spec` declares:
 * `params` (name -> 'string'|'int'|'float'|'bool'|'json', or [type, default]), `inputs` and
 * `outputs` (artifact names), `returns` (a type for one output named `Output`, or an object of
 * output names and types).
 */
export function step(spec, fn) {
  return {
    run(input) {
      try {
        return { params: outputsOf(spec, fn(argumentsOf(spec, input))) };
      } catch (e) {
        console.error(e instanceof Error && e.stack ? `${e.name}: ${e.message}\n${e.stack}` : String(e));
        throw cause(e);
      }
    },
  };
}
