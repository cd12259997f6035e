/*
 * A C plugin whose descriptor header is set by -D flags, to exercise the executor's handshake:
 * -DMAGIC=..., -DABI=..., -DSIZE=... (defaults: the correct values), -DNULL_DESCRIPTOR,
 * -DKINDS=... and -DNO_EXECUTE.
 */
#include <stddef.h>

#include "shardex_job.h"

#ifndef MAGIC
#define MAGIC SHX_MAGIC
#endif
#ifndef ABI
#define ABI SHX_ABI_VERSION
#endif
#ifndef SIZE
#define SIZE sizeof(shx_plugin_descriptor)
#endif
#ifndef KINDS
#define KINDS SHX_KIND_SIMPLE
#endif

static int32_t create(uint32_t kind, const shx_job_context *ctx, const shx_host_api *host,
                      void **instance_out) {
    (void)kind;
    (void)ctx;
    (void)host;
    *instance_out = NULL;
    return SHX_OK;
}

static void destroy(void *instance) {
    (void)instance;
}

__attribute__((unused)) static int32_t execute(void *instance, const shx_job_context *ctx) {
    (void)instance;
    (void)ctx;
    return SHX_OK;
}

static const shx_plugin_descriptor DESCRIPTOR = {
    .magic = MAGIC,
    .abi_version = ABI,
    .descriptor_size = SIZE,
    .kinds = KINDS,
    .name = "bad-descriptor",
    .version = "0.0.0",
    .create = create,
    .destroy = destroy,
#ifndef NO_EXECUTE
    .execute = execute,
#endif
};

const shx_plugin_descriptor *shardex_job_plugin_entry(void) {
#ifdef NULL_DESCRIPTOR
    (void)&DESCRIPTOR;
    return NULL;
#else
    return &DESCRIPTOR;
#endif
}
