// A pipeline step in JavaScript: keeps the rows of a CSV table whose `column` compares to
// `threshold` as `op` says (">", ">=", "<", "<=", "==", "!="; numbers compare as numbers,
// anything else as text), writes them as a CSV output, reports how many were kept, and returns
// the kept and dropped counts.

import { readText, step, writeText } from './weft.js';

const OPS = {
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '==': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

export const task = step(
  {
    params: { column: 'string', op: ['string', '>='], threshold: 'string' },
    inputs: ['table'],
    outputs: ['kept'],
    returns: { kept_rows: 'int', dropped_rows: 'int' },
  },
  ({ table, kept, column, op, threshold, metrics, log }) => {
    const compare = OPS[op];
    if (!compare) throw new RangeError(`op ${JSON.stringify(op)} is not one of ${Object.keys(OPS).join(' ')}`);
    const lines = readText(table.path).split('\n').filter((l) => l.length > 0);
    const header = lines[0].split(',');
    const at = header.indexOf(column);
    if (at < 0) throw new Error(`no column ${JSON.stringify(column)} in ${table.path} (columns: ${header.join(', ')})`);
    const asNumber = Number(threshold);
    const numeric = threshold.trim() !== '' && !Number.isNaN(asNumber);
    const keep = lines.slice(1).filter((line) => {
      const cell = line.split(',')[at];
      return numeric ? compare(Number(cell), asNumber) : compare(cell, threshold);
    });
    writeText(kept.path, [lines[0], ...keep].join('\n') + '\n');
    metrics.log('kept_rows', keep.length);
    log.info('filtered', { column, op, threshold, kept: keep.length });
    return { kept_rows: keep.length, dropped_rows: lines.length - 1 - keep.length };
  },
);
