// A step that does nothing, through the JavaScript SDK: the per-language overhead baseline.

import { step } from './weft.js';

export const task = step({}, () => {});
