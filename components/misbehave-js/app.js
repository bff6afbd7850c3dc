// A JavaScript step that tries what the sandbox must stop, for the tests: the same modes as
// the Python and Rust `misbehave` components.

import { env, readText, step } from './weft.js';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

/** Reads `path`; outside every granted directory, tries to reach it from each of them through
 * `..`, bypassing the SDK's own check, so the host's refusal is what is tested. */
function read(path) {
  try {
    return `read: ${readText(path).slice(0, 64)}`;
  } catch (e) {
    for (const [dir] of getDirectories()) {
      try {
        dir.openAt({ symlinkFollow: false }, `../../../..${path}`, {}, { read: true });
        return 'escaped';
      } catch (e2) {
        return `denied: ${e2.payload ?? e2}`;
      }
    }
    return `denied: ${e}`;
  }
}

function alloc() {
  const hoard = [];
  for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
}

function spin() {
  let n = 0;
  for (;;) n++;
}


export const task = step(
  {
    params: { mode: 'string', path: ['string', '/etc/passwd'], var: ['string', ''], addr: ['string', ''] },
    returns: { outcome: 'string', env_count: 'int' },
  },
  ({ mode, path, var: name, addr }) => {
    const vars = env();
    let outcome;
    if (mode === 'read') {
      outcome = read(path);
    } else if (mode === 'env') {
      outcome = name in vars ? vars[name] : '<unset>';
    } else if (mode === 'net') {
      // The JS runtime's only network API is fetch (wasi:http), which steps are built without:
      // the request cannot even start.
      try {
        const pending = fetch(`http://${addr}/`);
        outcome = `started: ${typeof pending}`;
        pending.then(() => {}, () => {});
      } catch (e) {
        outcome = `denied: ${e}`;
      }
    } else if (mode === 'alloc') {
      alloc();
    } else if (mode === 'loop') {
      spin();
    } else if (mode === 'raise') {
      throw new RangeError('asked to be out of range');
    } else if (mode === 'throw-string') {
      throw 'a bare string';
    } else {
      throw new TypeError(`unknown mode ${mode}`);
    }
    return { outcome, env_count: Object.keys(vars).length };
  },
);
