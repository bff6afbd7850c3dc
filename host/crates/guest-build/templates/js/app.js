// {{name}}: a Weft pipeline step in JavaScript.
//
// Sums one column of a CSV table, writes the per-row running total as a CSV output, reports
// the total as a metric and returns it. Build with `wasm-run build`, run with `./test.sh`.
// `./weft.js` is the guest SDK, added by the build.

import { readText, step, writeText } from './weft.js';

export const task = step(
  {
    params: { column: ['string', 'value'] },
    inputs: ['table'],
    outputs: ['totals'],
    returns: 'float',
  },
  ({ table, totals, column, metrics, log }) => {
    const lines = readText(table.path).split('\n').filter((l) => l.length > 0);
    const header = lines[0].split(',');
    const at = header.indexOf(column);
    if (at < 0) throw new Error(`no column ${JSON.stringify(column)} in ${table.path}`);
    let total = 0;
    const out = [`${column},running_total`];
    for (const line of lines.slice(1)) {
      const cell = line.split(',')[at];
      total += Number(cell);
      out.push(`${cell},${total}`);
    }
    writeText(totals.path, out.join('\n') + '\n');
    metrics.log('total', total);
    log.info('summed', { column, total });
    return total;
  },
);
