/* A step that does nothing, through the C SDK: the per-language overhead baseline. */
#include "weft.h"

int weft_run(weft_step *step) {
    (void)step;
    return WEFT_OK;
}
