/*
 * c-hello: an example Shardex job plugin written in C against shardex_job.h.
 *
 * Simple job: appends "c-hello <job> <item>/<total> <item parameter> <task id>\n" to the file
 * c-hello.out in the work directory. With the job parameter "fail" it reports an error instead.
 *
 * Dataflow job: counts from 1 to the property "count" (default 5) in batches of up to three
 * numbers; each processed batch appends "c-batch <numbers separated by commas>\n" to
 * c-hello.out. Fetch returns nothing once the task is cancelled.
 *
 * Build:  gcc -shared -fPIC -Wall -Wextra -I jobs/sdk/include -o libc_hello.so hello.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardex_job.h"

typedef struct instance {
    const shx_job_context *ctx; /* host-owned, valid until destroy() */
    const shx_host_api *host;   /* host-owned, valid until destroy() */
    long next;
    long count;
} instance;

typedef struct batch {
    size_t len;
    long numbers[3];
} batch;

static void say(const instance *self, uint32_t level, const char *text) {
    self->host->log(self->host->host_ctx, level, text, strlen(text));
}

static int fail(const instance *self, const char *text) {
    self->host->set_error(self->host->host_ctx, text, strlen(text));
    return SHX_ERROR;
}

/* Opens c-hello.out in the work directory. shx_str is not NUL-terminated: copy with lengths. */
static FILE *open_output(const instance *self) {
    char path[4096];
    const shx_str *dir = &self->ctx->work_dir;
    if (dir->len + sizeof "/c-hello.out" > sizeof path) {
        return NULL;
    }
    memcpy(path, dir->ptr, dir->len);
    memcpy(path + dir->len, "/c-hello.out", sizeof "/c-hello.out");
    return fopen(path, "a");
}

/* Looks a property up by key, NULL if absent. */
static const shx_str *property(const shx_job_context *ctx, const char *key) {
    size_t key_len = strlen(key);
    for (size_t i = 0; i < ctx->property_count; i++) {
        const shx_property *p = &ctx->properties[i];
        if (p->key.len == key_len && memcmp(p->key.ptr, key, key_len) == 0) {
            return &p->value;
        }
    }
    return NULL;
}

static int32_t create(uint32_t kind, const shx_job_context *ctx, const shx_host_api *host,
                      void **instance_out) {
    if (host->abi_version != SHX_ABI_VERSION || ctx->struct_size < sizeof(shx_job_context)) {
        return SHX_ERROR; /* an older host: nothing here can be trusted */
    }
    instance *self = calloc(1, sizeof *self);
    if (self == NULL) {
        const char *oom = "c-hello: out of memory";
        host->set_error(host->host_ctx, oom, strlen(oom));
        return SHX_ERROR;
    }
    self->ctx = ctx;
    self->host = host;
    self->next = 1;
    self->count = 5;
    const shx_str *count = property(ctx, "count");
    if (count != NULL && count->len > 0 && count->len < 20) {
        char text[20];
        memcpy(text, count->ptr, count->len);
        text[count->len] = '\0';
        self->count = strtol(text, NULL, 10);
    }
    (void)kind; /* the host only asks for kinds we declared; both use the same state */
    *instance_out = self;
    return SHX_OK;
}

static void destroy(void *handle) {
    free(handle);
}

static int32_t execute(void *handle, const shx_job_context *ctx) {
    instance *self = handle;
    if (ctx->job_parameter.len == 4 && memcmp(ctx->job_parameter.ptr, "fail", 4) == 0) {
        return fail(self, "c-hello failed as asked");
    }
    FILE *out = open_output(self);
    if (out == NULL) {
        return fail(self, "c-hello: cannot open c-hello.out in the work directory");
    }
    fprintf(out, "c-hello %.*s %u/%u %.*s %.*s\n", (int)ctx->job_name.len, ctx->job_name.ptr,
            ctx->sharding_item, ctx->sharding_total_count, (int)ctx->item_parameter.len,
            ctx->item_parameter.ptr, (int)ctx->task_id.len, ctx->task_id.ptr);
    if (fclose(out) != 0) {
        return fail(self, "c-hello: cannot write c-hello.out");
    }
    say(self, SHX_LOG_INFO, "c-hello wrote its line");
    return SHX_OK;
}

static int32_t fetch_data(void *handle, const shx_job_context *ctx, void **batch_out,
                          size_t *count_out) {
    instance *self = handle;
    (void)ctx;
    *batch_out = NULL;
    *count_out = 0;
    if (self->host->is_cancelled(self->host->host_ctx) || self->next > self->count) {
        return SHX_OK; /* no more data */
    }
    batch *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return fail(self, "c-hello: out of memory");
    }
    while (b->len < 3 && self->next <= self->count) {
        b->numbers[b->len++] = self->next++;
    }
    *batch_out = b; /* ours; the host hands it back to process_data or free_batch */
    *count_out = b->len;
    return SHX_OK;
}

static int32_t process_data(void *handle, const shx_job_context *ctx, void *batch_handle) {
    instance *self = handle;
    batch *b = batch_handle;
    (void)ctx;
    FILE *out = open_output(self);
    if (out == NULL) {
        free(b);
        return fail(self, "c-hello: cannot open c-hello.out in the work directory");
    }
    fputs("c-batch ", out);
    for (size_t i = 0; i < b->len; i++) {
        fprintf(out, i == 0 ? "%ld" : ",%ld", b->numbers[i]);
    }
    fputc('\n', out);
    free(b); /* process_data owns the batch whatever happens */
    if (fclose(out) != 0) {
        return fail(self, "c-hello: cannot write c-hello.out");
    }
    return SHX_OK;
}

static void free_batch(void *handle, void *batch_handle) {
    (void)handle;
    free(batch_handle);
}

static const shx_plugin_descriptor DESCRIPTOR = {
    .magic = SHX_MAGIC,
    .abi_version = SHX_ABI_VERSION,
    .descriptor_size = sizeof(shx_plugin_descriptor),
    .kinds = SHX_KIND_SIMPLE | SHX_KIND_DATAFLOW,
    .name = "c-hello",
    .version = "1.0.0",
    .create = create,
    .destroy = destroy,
    .execute = execute,
    .fetch_data = fetch_data,
    .process_data = process_data,
    .free_batch = free_batch,
};

const shx_plugin_descriptor *shardex_job_plugin_entry(void) {
    return &DESCRIPTOR;
}
