/*
 * csv-stats-c: a Weft pipeline step in C.
 *
 * Min-max scales the numeric columns of a CSV table: input artifact `table` (a CSV with a
 * header, no quoted cells), output artifact `scaled` (the same table, header kept, each scaled
 * column's values mapped to [0, 1]; a constant column becomes 0). Param `columns` names the
 * columns to scale, comma-separated (default: every column whose cells are all numbers); a
 * named column missing from the table, or holding a cell that is not a number, fails the step.
 * Reports the metrics `rows` and `<column>.min` / `<column>.max`, returns `rows` (int) and
 * `columns` (a JSON list of the scaled columns).
 */
#include "weft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **cells;
    size_t n;
} row;

/* Splits `line` in place at commas. */
static row split(char *line) {
    row r = {NULL, 0};
    for (char *cell = line;;) {
        r.cells = realloc(r.cells, (r.n + 1) * sizeof(char *));
        r.cells[r.n++] = cell;
        char *comma = strchr(cell, ',');
        if (!comma)
            break;
        *comma = '\0';
        cell = comma + 1;
    }
    return r;
}

/* The number in `cell`, if all of it is one. */
static int number(const char *cell, double *out) {
    char *end;
    if (!*cell)
        return 0;
    *out = strtod(cell, &end);
    return *end == '\0';
}

int weft_run(weft_step *step) {
    const char *table = weft_input(step, "table");
    const char *scaled = weft_output_path(step, "scaled");
    const char *wanted = weft_param_str(step, "columns", "");
    if (weft_failed(step))
        return WEFT_FAILED;
    char *text = weft_read_file(step, table, NULL);
    if (!text)
        return WEFT_FAILED;

    /* Rows, split in place; blank lines and a trailing \r dropped. */
    row *rows = NULL;
    size_t n_rows = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (!len)
            continue;
        rows = realloc(rows, (n_rows + 1) * sizeof(row));
        rows[n_rows++] = split(line);
    }
    if (n_rows == 0)
        return weft_fail(step, "%s: the table is empty (it needs a header)", table);
    row header = rows[0];
    for (size_t r = 1; r < n_rows; r++)
        if (rows[r].n != header.n)
            return weft_fail(step, "%s: row %zu has %zu cells, the header %zu", table, r + 1,
                             rows[r].n, header.n);

    /* Which columns to scale. */
    int *scale = calloc(header.n, sizeof(int));
    if (*wanted) {
        char *list = strdup(wanted);
        for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
            size_t c = 0;
            while (c < header.n && strcmp(header.cells[c], name) != 0)
                c++;
            if (c == header.n)
                return weft_fail(step, "no column \"%s\" in %s", name, table);
            scale[c] = 1;
        }
        free(list);
    } else {
        for (size_t c = 0; c < header.n; c++) {
            scale[c] = n_rows > 1;
            double x;
            for (size_t r = 1; r < n_rows && scale[c]; r++)
                scale[c] = number(rows[r].cells[c], &x);
        }
    }

    /* Ranges, then the scaled table. */
    double *lo = malloc(header.n * sizeof(double)), *hi = malloc(header.n * sizeof(double));
    for (size_t c = 0; c < header.n; c++) {
        lo[c] = INFINITY;
        hi[c] = -INFINITY;
        for (size_t r = 1; r < n_rows && scale[c]; r++) {
            double x;
            if (!number(rows[r].cells[c], &x))
                return weft_fail(step, "column \"%s\", row %zu: \"%s\" is not a number",
                                 header.cells[c], r + 1, rows[r].cells[c]);
            lo[c] = fmin(lo[c], x);
            hi[c] = fmax(hi[c], x);
        }
    }
    FILE *out = fopen(scaled, "w");
    if (!out)
        return weft_fail(step, "%s: cannot write", scaled);
    for (size_t r = 0; r < n_rows; r++) {
        for (size_t c = 0; c < header.n; c++) {
            if (c)
                fputc(',', out);
            double x;
            if (r > 0 && scale[c] && number(rows[r].cells[c], &x))
                fprintf(out, "%.10g", hi[c] > lo[c] ? (x - lo[c]) / (hi[c] - lo[c]) : 0.0);
            else
                fputs(rows[r].cells[c], out);
        }
        fputc('\n', out);
    }
    if (fclose(out) != 0)
        return weft_fail(step, "%s: write failed", scaled);

    /* Metrics and output params. */
    size_t n_scaled = 0, json_len = 3;
    for (size_t c = 0; c < header.n; c++)
        if (scale[c]) {
            n_scaled++;
            json_len += strlen(header.cells[c]) + 3;
        }
    char *json = malloc(json_len), *at = json;
    at += sprintf(at, "[");
    for (size_t c = 0; c < header.n; c++) {
        if (!scale[c])
            continue;
        char metric[256];
        snprintf(metric, sizeof metric, "%s.min", header.cells[c]);
        weft_metric(metric, lo[c]);
        snprintf(metric, sizeof metric, "%s.max", header.cells[c]);
        weft_metric(metric, hi[c]);
        at += sprintf(at, "%s\"%s\"", at == json + 1 ? "" : ",", header.cells[c]);
    }
    sprintf(at, "]");
    weft_metric("rows", (double)(n_rows - 1));
    weft_log(WEFT_INFO, "scaled %zu of %zu columns over %zu rows", n_scaled, header.n, n_rows - 1);
    weft_return_int(step, "rows", (int64_t)(n_rows - 1));
    weft_return_json(step, "columns", json);

    free(json);
    free(lo);
    free(hi);
    free(scale);
    for (size_t r = 0; r < n_rows; r++)
        free(rows[r].cells);
    free(rows);
    free(text);
    return WEFT_OK;
}
