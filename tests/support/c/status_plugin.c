/*
 * A simple-job plugin whose execute() returns the status given in the job parameter (a decimal
 * number), setting an error message only when the item parameter is "with-message". It checks
 * that the host handles statuses the ABI does not define, and missing messages.
 */
#include <stdlib.h>
#include <string.h>

#include "shardex_job.h"

static int32_t create(uint32_t kind, const shx_job_context *ctx, const shx_host_api *host,
                      void **instance_out) {
    (void)kind;
    (void)ctx;
    *instance_out = (void *)host;
    return SHX_OK;
}

static void destroy(void *instance) {
    (void)instance;
}

static int32_t execute(void *instance, const shx_job_context *ctx) {
    const shx_host_api *host = instance;
    char text[16] = {0};
    size_t len = ctx->job_parameter.len < 15 ? ctx->job_parameter.len : 15;
    memcpy(text, ctx->job_parameter.ptr, len);
    if (ctx->item_parameter.len == 12 && memcmp(ctx->item_parameter.ptr, "with-message", 12) == 0) {
        host->set_error(host->host_ctx, "status plugin message", 21);
    }
    return (int32_t)strtol(text, NULL, 10);
}

static const shx_plugin_descriptor DESCRIPTOR = {
    .magic = SHX_MAGIC,
    .abi_version = SHX_ABI_VERSION,
    .descriptor_size = sizeof(shx_plugin_descriptor),
    .kinds = SHX_KIND_SIMPLE,
    .name = "status-plugin",
    .version = "0.0.0",
    .create = create,
    .destroy = destroy,
    .execute = execute,
};

const shx_plugin_descriptor *shardex_job_plugin_entry(void) {
    return &DESCRIPTOR;
}
