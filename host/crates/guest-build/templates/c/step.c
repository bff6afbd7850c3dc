/*
 * {{name}}: a Weft pipeline step in C.
 *
 * Sums one column of a CSV table, writes the per-row running total as a CSV output, reports the
 * total as a metric and returns it. Build with `wasm-run build`, run with `./test.sh`.
 * The SDK (weft.h) is compiled in by `wasm-run build`; its header documents every call.
 */
#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int weft_run(weft_step *step) {
    const char *column = weft_param_str(step, "column", "value");
    const char *table = weft_input(step, "table");
    const char *totals = weft_output_path(step, "totals");
    if (weft_failed(step))
        return WEFT_FAILED;
    char *text = weft_read_file(step, table, NULL);
    if (!text)
        return WEFT_FAILED;

    /* The header: which cell of a row is the column. */
    char *rest = text;
    char *line = strsep(&rest, "\n");
    line[strcspn(line, "\r")] = '\0';
    int at = -1, i = 0;
    for (char *cell = strsep(&line, ","); cell; cell = strsep(&line, ","), i++)
        if (strcmp(cell, column) == 0)
            at = i;
    if (at < 0) {
        free(text);
        return weft_fail(step, "no column \"%s\" in %s", column, table);
    }

    FILE *out = fopen(totals, "w");
    if (!out) {
        free(text);
        return weft_fail(step, "%s: cannot write", totals);
    }
    fprintf(out, "%s,running_total\n", column);
    double total = 0;
    while ((line = strsep(&rest, "\n")) != NULL) {
        line[strcspn(line, "\r")] = '\0';
        if (!*line)
            continue;
        char *cell = NULL;
        i = 0;
        for (char *c = strsep(&line, ","); c; c = strsep(&line, ","), i++)
            if (i == at)
                cell = c;
        char *end;
        double x = cell ? strtod(cell, &end) : 0;
        if (!cell || !*cell || *end) {
            fclose(out);
            int rc = weft_fail(step, "\"%s\" in column %s is not a number", cell ? cell : "",
                               column);
            free(text);
            return rc;
        }
        total += x;
        fprintf(out, "%s,%.17g\n", cell, total);
    }
    fclose(out);
    free(text);

    weft_metric("total", total);
    weft_log(WEFT_INFO, "summed column %s: %g", column, total);
    weft_return_float(step, "Output", total);
    return WEFT_OK;
}
