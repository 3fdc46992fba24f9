/*  test_json - drover --json's lines: escapes, non-UTF-8 output as
    base64, and each kind of object, written to memory and compared.
*/

#include <criterion/criterion.h>
#include <czmq.h>

#include "drv_json.h"

//  What a writer put out, as a string the caller frees.
#define S_CAPTURE(call)                                                 \
    ({                                                                  \
        char *text_ = NULL;                                             \
        size_t size_ = 0;                                               \
        FILE *out = open_memstream (&text_, &size_);                    \
        call;                                                           \
        fclose (out);                                                   \
        text_;                                                          \
    })

Test (json, result_escapes_quotes_controls_and_keeps_utf8)
{
    uint8_t data [] = "a\"b\\c\n\x01 \xc3\xa9";      //  ends in é, valid UTF-8
    drover_result_t result = {.job_id = 7, .outcome = DROVER_OUTCOME_OK, .data = data,
                              .size = sizeof data - 1, .reason = "", .attempts = 2};
    char *text = S_CAPTURE (drv_json_result (out, &result, 3));
    cr_assert_str_eq (text, "{\"line\":3,\"job_id\":7,\"outcome\":\"ok\","
                            "\"data\":\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9\",\"reason\":\"\","
                            "\"attempts\":2}\n");
    free (text);
}

Test (json, output_that_is_not_utf8_goes_as_base64)
{
    uint8_t data [] = {0xff, 0x00, 0xfe};
    char reason [] = "exit status 1";
    drover_result_t result = {.job_id = 1, .outcome = DROVER_OUTCOME_ERROR, .data = data,
                              .size = 3, .reason = reason, .attempts = 1};
    char *text = S_CAPTURE (drv_json_result (out, &result, 0));
    cr_assert_str_eq (text, "{\"job_id\":1,\"outcome\":\"error\",\"data_base64\":\"/wD+\","
                            "\"reason\":\"exit status 1\",\"attempts\":1}\n");
    free (text);
    //  An overlong encoding and a lone continuation byte are not UTF-8.
    uint8_t overlong [] = {0xc0, 0xaf};
    result.data = overlong;
    result.size = 2;
    text = S_CAPTURE (drv_json_result (out, &result, 0));
    cr_assert (strstr (text, "\"data_base64\":"), "%s", text);
    free (text);
}

Test (json, status_queue_and_job_id)
{
    drover_status_t status = {.job_id = 9, .state = DROVER_JOB_RUNNING, .function = "square",
                              .worker = "host:1", .attempts = 1, .priority = -2};
    char *text = S_CAPTURE (drv_json_status (out, &status));
    cr_assert_str_eq (text, "{\"job_id\":9,\"state\":\"running\",\"function\":\"square\","
                            "\"attempts\":1,\"priority\":-2,\"worker\":\"host:1\"}\n");
    free (text);
    status.chunk = true;
    text = S_CAPTURE (drv_json_status (out, &status));
    cr_assert_str_eq (text, "{\"job_id\":9,\"state\":\"running\",\"function\":\"square\","
                            "\"attempts\":1,\"priority\":-2,\"worker\":\"host:1\","
                            "\"chunk\":true}\n");
    free (text);
    drover_queue_t queue = {.function = "square", .paused = true, .limit = 2,
                            .max_queue_in_force = 10, .queued = 3, .running = 2,
                            .workers = 1};
    text = S_CAPTURE (drv_json_queue (out, &queue));
    cr_assert_str_eq (text, "{\"function\":\"square\",\"paused\":true,\"limit\":2,"
                            "\"max_queue\":0,\"max_queue_in_force\":10,\"queued\":3,"
                            "\"delayed\":0,\"running\":2,\"workers\":1}\n");
    free (text);
    text = S_CAPTURE (drv_json_job_id (out, 12));
    cr_assert_str_eq (text, "{\"job_id\":12}\n");
    free (text);
}
