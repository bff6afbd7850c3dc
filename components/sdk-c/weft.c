/*
 * weft.c: the Weft guest SDK for C over the `step` world's bindings (step.h, written by
 * `wit-bindgen c`). It exports `task.run`, gives `weft_run` the input as NUL-terminated C
 * strings and turns what the step recorded into the result the host reads.
 */
#include "weft.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "step.h"

typedef struct {
    char *name;
    weft_pipeline_types_param_value_t value; /* strings in it point into `text` */
    char *text;                               /* the str/json value, NUL-terminated */
} param_in;

typedef struct {
    char *name;
    char *path;
} artifact_in;

struct weft_step {
    char *run_id;
    char *task_name;
    uint32_t attempt;
    param_in *params;
    size_t n_params;
    artifact_in *inputs;
    size_t n_inputs;
    artifact_in *outputs;
    size_t n_outputs;
    char **owned; /* strings handed out (output paths), freed after the run */
    size_t n_owned;
    weft_pipeline_types_param_t *returned;
    size_t n_returned;
    char *failure;
};

/* malloc that fails the whole step (a trap the host reports) rather than returning NULL. */
static void *must(void *p) {
    if (!p) {
        fputs("weft: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *cstr(const step_string_t *s) {
    char *c = must(malloc(s->len + 1));
    memcpy(c, s->ptr, s->len);
    c[s->len] = '\0';
    return c;
}

static char *vformat(const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *text = must(malloc(n < 0 ? 1 : (size_t)n + 1));
    if (n < 0)
        text[0] = '\0';
    else
        vsnprintf(text, (size_t)n + 1, fmt, again);
    va_end(again);
    return text;
}

/* ---- Failing ---------------------------------------------------------------------------- */

static int fail_with(weft_step *step, char *message) {
    if (step->failure)
        free(message);
    else
        step->failure = message;
    return WEFT_FAILED;
}

int weft_fail(weft_step *step, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *message = vformat(fmt, ap);
    va_end(ap);
    return fail_with(step, message);
}

bool weft_failed(const weft_step *step) { return step->failure != NULL; }

/* ---- Parameters ------------------------------------------------------------------------- */

static const param_in *find_param(const weft_step *step, const char *name) {
    for (size_t i = 0; i < step->n_params; i++)
        if (strcmp(step->params[i].name, name) == 0)
            return &step->params[i];
    return NULL;
}

bool weft_has_param(const weft_step *step, const char *name) { return find_param(step, name); }

static const char *type_name(uint8_t tag) {
    switch (tag) {
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_STR: return "string";
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_INT: return "int";
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_FLOAT: return "float";
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_BOOLEAN: return "bool";
    default: return "json";
    }
}

/* The parameter `name` if it has type `tag`; NULL if absent; records a failure if mistyped. */
static const param_in *typed_param(weft_step *step, const char *name, uint8_t tag,
                                   const char *wanted) {
    const param_in *p = find_param(step, name);
    if (!p || p->value.tag == tag)
        return p;
    if (tag == WEFT_PIPELINE_TYPES_PARAM_VALUE_FLOAT &&
        p->value.tag == WEFT_PIPELINE_TYPES_PARAM_VALUE_INT)
        return p;
    switch (p->value.tag) {
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_STR:
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_JSON:
        weft_fail(step, "parameter %s: expected %s, got %s \"%s\"", name, wanted,
                  type_name(p->value.tag), p->text);
        break;
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_INT:
        weft_fail(step, "parameter %s: expected %s, got int %lld", name, wanted,
                  (long long)p->value.val.int_);
        break;
    case WEFT_PIPELINE_TYPES_PARAM_VALUE_FLOAT:
        weft_fail(step, "parameter %s: expected %s, got float %g", name, wanted,
                  p->value.val.float_);
        break;
    default:
        weft_fail(step, "parameter %s: expected %s, got bool %s", name, wanted,
                  p->value.val.boolean ? "true" : "false");
    }
    return NULL;
}

const char *weft_param_str(weft_step *step, const char *name, const char *def) {
    const param_in *p = typed_param(step, name, WEFT_PIPELINE_TYPES_PARAM_VALUE_STR, "string");
    return p ? p->text : def;
}

const char *weft_param_json(weft_step *step, const char *name, const char *def) {
    const param_in *p = typed_param(step, name, WEFT_PIPELINE_TYPES_PARAM_VALUE_JSON, "json");
    return p ? p->text : def;
}

int64_t weft_param_int(weft_step *step, const char *name, int64_t def) {
    const param_in *p = typed_param(step, name, WEFT_PIPELINE_TYPES_PARAM_VALUE_INT, "int");
    return p ? p->value.val.int_ : def;
}

double weft_param_float(weft_step *step, const char *name, double def) {
    const param_in *p = typed_param(step, name, WEFT_PIPELINE_TYPES_PARAM_VALUE_FLOAT, "float");
    if (!p)
        return def;
    return p->value.tag == WEFT_PIPELINE_TYPES_PARAM_VALUE_INT ? (double)p->value.val.int_
                                                               : p->value.val.float_;
}

bool weft_param_bool(weft_step *step, const char *name, bool def) {
    const param_in *p = typed_param(step, name, WEFT_PIPELINE_TYPES_PARAM_VALUE_BOOLEAN, "bool");
    return p ? p->value.val.boolean : def;
}

/* ---- Artifacts -------------------------------------------------------------------------- */

static const char *find_artifact(weft_step *step, const artifact_in *list, size_t n,
                                 const char *kind, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return list[i].path;
    weft_fail(step, "no %s artifact `%s` was granted", kind, name);
    return NULL;
}

/* Keeps `path` until the step ends (freed with the step). */
static const char *own(weft_step *step, char *path) {
    step->owned = must(realloc(step->owned, (step->n_owned + 1) * sizeof(char *)));
    step->owned[step->n_owned++] = path;
    return path;
}

/* A pipeline hands every artifact over as a directory; one holding a single regular file is
 * that file (what the step that wrote it meant). Anything else is itself. */
static const char *sole_file(weft_step *step, const char *path) {
    DIR *dir = opendir(path);
    if (!dir)
        return path;
    char *found = NULL;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && count < 2) {
        if (e->d_name[0] == '.')
            continue;
        count++;
        size_t n = strlen(path) + 1 + strlen(e->d_name) + 1;
        free(found);
        found = must(malloc(n));
        snprintf(found, n, "%s/%s", path, e->d_name);
    }
    closedir(dir);
    struct stat st;
    if (count != 1 || stat(found, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(found);
        return path;
    }
    return own(step, found);
}

const char *weft_input(weft_step *step, const char *name) {
    const char *path = find_artifact(step, step->inputs, step->n_inputs, "input", name);
    return path ? sole_file(step, path) : NULL;
}

const char *weft_output_dir(weft_step *step, const char *name) {
    return find_artifact(step, step->outputs, step->n_outputs, "output", name);
}

const char *weft_output_path(weft_step *step, const char *name) {
    const char *dir = weft_output_dir(step, name);
    if (!dir)
        return NULL;
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *path = must(malloc(n));
    snprintf(path, n, "%s/%s", dir, name);
    return own(step, path);
}

char *weft_read_file(weft_step *step, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        weft_fail(step, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = must(malloc(cap));
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = must(realloc(buf, cap *= 2));
    }
    if (ferror(f)) {
        weft_fail(step, "%s: %s", path, strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* ---- Output parameters ------------------------------------------------------------------ */

static weft_pipeline_types_param_t *returned(weft_step *step, const char *name) {
    step->returned =
        must(realloc(step->returned, (step->n_returned + 1) * sizeof(*step->returned)));
    weft_pipeline_types_param_t *p = &step->returned[step->n_returned++];
    step_string_dup(&p->name, name);
    return p;
}

void weft_return_str(weft_step *step, const char *name, const char *value) {
    weft_pipeline_types_param_t *p = returned(step, name);
    p->value.tag = WEFT_PIPELINE_TYPES_PARAM_VALUE_STR;
    step_string_dup(&p->value.val.str, value);
}

void weft_return_json(weft_step *step, const char *name, const char *json) {
    weft_pipeline_types_param_t *p = returned(step, name);
    p->value.tag = WEFT_PIPELINE_TYPES_PARAM_VALUE_JSON;
    step_string_dup(&p->value.val.json, json);
}

void weft_return_int(weft_step *step, const char *name, int64_t value) {
    weft_pipeline_types_param_t *p = returned(step, name);
    p->value.tag = WEFT_PIPELINE_TYPES_PARAM_VALUE_INT;
    p->value.val.int_ = value;
}

void weft_return_float(weft_step *step, const char *name, double value) {
    weft_pipeline_types_param_t *p = returned(step, name);
    p->value.tag = WEFT_PIPELINE_TYPES_PARAM_VALUE_FLOAT;
    p->value.val.float_ = value;
}

void weft_return_bool(weft_step *step, const char *name, bool value) {
    weft_pipeline_types_param_t *p = returned(step, name);
    p->value.tag = WEFT_PIPELINE_TYPES_PARAM_VALUE_BOOLEAN;
    p->value.val.boolean = value;
}

/* ---- Metrics and logs ------------------------------------------------------------------- */

void weft_metric(const char *name, double value) {
    step_string_t n;
    step_string_set(&n, name);
    weft_pipeline_metrics_report(&n, value, NULL);
}

void weft_metric_at(const char *name, double value, uint64_t step_number) {
    step_string_t n;
    step_string_set(&n, name);
    weft_pipeline_metrics_report(&n, value, &step_number);
}

void weft_log(weft_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = vformat(fmt, ap);
    va_end(ap);
    step_string_t message;
    step_string_set(&message, text);
    step_list_tuple2_string_string_t fields = {NULL, 0};
    weft_pipeline_log_level_t l = level > WEFT_ERROR ? WEFT_PIPELINE_LOG_LEVEL_ERROR : level;
    weft_pipeline_log_emit(l, &message, &fields);
    free(text);
}

/* ---- Where this execution sits ---------------------------------------------------------- */

const char *weft_run_id(const weft_step *step) { return step->run_id; }
const char *weft_task_name(const weft_step *step) { return step->task_name; }
uint32_t weft_attempt(const weft_step *step) { return step->attempt; }

/* ---- The export ------------------------------------------------------------------------- */

static artifact_in *artifacts(const weft_pipeline_types_list_artifact_t *list) {
    artifact_in *a = must(calloc(list->len + 1, sizeof(*a)));
    for (size_t i = 0; i < list->len; i++) {
        a[i].name = cstr(&list->ptr[i].name);
        a[i].path = cstr(&list->ptr[i].path);
    }
    return a;
}

static void free_artifacts(artifact_in *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(a[i].name);
        free(a[i].path);
    }
    free(a);
}

bool exports_weft_pipeline_task_run(exports_weft_pipeline_task_step_input_t *input,
                                    exports_weft_pipeline_task_step_output_t *ret,
                                    step_string_t *err) {
    weft_step step = {0};
    step.run_id = cstr(&input->context.run_id);
    step.task_name = cstr(&input->context.task_name);
    step.attempt = input->context.attempt;
    step.n_params = input->params.len;
    step.params = must(calloc(step.n_params + 1, sizeof(param_in)));
    for (size_t i = 0; i < step.n_params; i++) {
        const weft_pipeline_types_param_t *p = &input->params.ptr[i];
        step.params[i].name = cstr(&p->name);
        step.params[i].value = p->value;
        if (p->value.tag == WEFT_PIPELINE_TYPES_PARAM_VALUE_STR)
            step.params[i].text = cstr(&p->value.val.str);
        else if (p->value.tag == WEFT_PIPELINE_TYPES_PARAM_VALUE_JSON)
            step.params[i].text = cstr(&p->value.val.json);
    }
    step.n_inputs = input->inputs.len;
    step.inputs = artifacts(&input->inputs);
    step.n_outputs = input->outputs.len;
    step.outputs = artifacts(&input->outputs);
    exports_weft_pipeline_task_step_input_free(input);

    int rc = weft_run(&step);
    fflush(stdout);
    fflush(stderr);
    if (rc != WEFT_OK && !step.failure)
        weft_fail(&step, "the step returned %d without a message (use weft_fail)", rc);

    bool ok = step.failure == NULL;
    if (ok) {
        ret->params.ptr = step.returned;
        ret->params.len = step.n_returned;
    } else {
        step_string_dup(err, step.failure);
        for (size_t i = 0; i < step.n_returned; i++)
            weft_pipeline_types_param_free(&step.returned[i]);
        free(step.returned);
    }
    free(step.failure);
    for (size_t i = 0; i < step.n_params; i++) {
        free(step.params[i].name);
        free(step.params[i].text);
    }
    free(step.params);
    free_artifacts(step.inputs, step.n_inputs);
    free_artifacts(step.outputs, step.n_outputs);
    for (size_t i = 0; i < step.n_owned; i++)
        free(step.owned[i]);
    free(step.owned);
    free(step.run_id);
    free(step.task_name);
    return ok;
}
