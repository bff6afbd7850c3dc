/*
 * weft.h: the Weft guest SDK for C. A pipeline step in C, without raw bindings.
 *
 * A step defines one function, called once per execution:
 *
 *     #include "weft.h"
 *
 *     int weft_run(weft_step *step) {
 *         const char *column = weft_param_str(step, "column", "value");
 *         const char *table = weft_input(step, "table");        // path of the input artifact
 *         const char *totals = weft_output_path(step, "totals"); // a file in the output's dir
 *         if (!table || !totals) return WEFT_FAILED;            // the reason is recorded
 *         ...                                                   // plain stdio on those paths
 *         weft_metric("total", total);
 *         weft_log(WEFT_INFO, "summed %s", column);
 *         weft_return_float(step, "Output", total);
 *         return WEFT_OK;
 *     }
 *
 * Failing: `return weft_fail(step, "no column %s", column);` ends the step, and the message
 * (printf-style) becomes the task's failure cause. Helpers that cannot do what was asked
 * (a missing artifact, a parameter of another type, an unreadable file) record their reason
 * the same way and return NULL or the default; the step fails with the first reason recorded
 * even if `weft_run` then returns WEFT_OK, so checking every call is optional.
 *
 * Strings the SDK returns are owned by the step and live until `weft_run` returns.
 * Paths are plain files and directories: read and write them with stdio.
 * `wasm-run build` compiles this SDK and the bindings into every C component.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One execution of a step: its params, artifacts, outputs and failure. Opaque. */
typedef struct weft_step weft_step;

#define WEFT_OK 0
#define WEFT_FAILED (-1)

/* Defined by the step: return WEFT_OK, or WEFT_FAILED after weft_fail (or any nonzero). */
int weft_run(weft_step *step);

/* ---- Failing ---------------------------------------------------------------------------- */

/* Records the failure cause (printf-style; the first one recorded wins); returns WEFT_FAILED. */
int weft_fail(weft_step *step, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether a failure has been recorded. */
bool weft_failed(const weft_step *step);

/* ---- Parameters ------------------------------------------------------------------------- */

/* Whether the parameter `name` was given. */
bool weft_has_param(const weft_step *step, const char *name);
/* The parameter `name`, or `def` when it was not given. A parameter of another type records a
 * failure ("parameter n: expected int, got string \"x\"") and gives `def`. An int parameter
 * is accepted where a float is asked for. */
const char *weft_param_str(weft_step *step, const char *name, const char *def);
int64_t weft_param_int(weft_step *step, const char *name, int64_t def);
double weft_param_float(weft_step *step, const char *name, double def);
bool weft_param_bool(weft_step *step, const char *name, bool def);
/* A JSON parameter, as its text. */
const char *weft_param_json(weft_step *step, const char *name, const char *def);

/* ---- Artifacts -------------------------------------------------------------------------- */

/* The path of input artifact `name`: the file itself for a one-file artifact, else its
 * directory. NULL (and a failure recorded) when the step was not given it. */
const char *weft_input(weft_step *step, const char *name);
/* The writable directory of output artifact `name`; NULL (and a failure) when not given. */
const char *weft_output_dir(weft_step *step, const char *name);
/* `<output dir>/<name>`: the file to write when the output is one file. NULL when not given. */
const char *weft_output_path(weft_step *step, const char *name);

/* The whole file at `path`, NUL-terminated (its length in *len when len is not NULL); NULL and
 * a failure recorded ("PATH: reason") when it cannot be read. Free it with free(). */
char *weft_read_file(weft_step *step, const char *path, size_t *len);

/* ---- Output parameters ------------------------------------------------------------------ */

/* Returns the parameter `name` from the step (in the order given). */
void weft_return_str(weft_step *step, const char *name, const char *value);
void weft_return_int(weft_step *step, const char *name, int64_t value);
void weft_return_float(weft_step *step, const char *name, double value);
void weft_return_bool(weft_step *step, const char *name, bool value);
/* `json` must be a JSON document; the host checks it parses. */
void weft_return_json(weft_step *step, const char *name, const char *json);

/* ---- Metrics and logs ------------------------------------------------------------------- */

/* A final value of metric `name` (accuracy, loss, ...). NaN and infinities are recorded. */
void weft_metric(const char *name, double value);
/* One point of a series: the value at training step or epoch `step_number`. */
void weft_metric_at(const char *name, double value, uint64_t step_number);

typedef enum weft_level { WEFT_TRACE, WEFT_DEBUG, WEFT_INFO, WEFT_WARN, WEFT_ERROR } weft_level;
/* One record in the task log at `level` (printf-style). stdout and stderr go to the log too. */
void weft_log(weft_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Where this execution sits ---------------------------------------------------------- */

const char *weft_run_id(const weft_step *step);
const char *weft_task_name(const weft_step *step);
/* 1 on the first try, 2 on the first retry, ... */
uint32_t weft_attempt(const weft_step *step);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
