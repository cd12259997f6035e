/*
 * shardex_job.h - the Shardex job plugin ABI, version 1, for plugins written in C.
 *
 * A plugin is a shared library exporting one function:
 *
 *     const shx_plugin_descriptor *shardex_job_plugin_entry(void);
 *
 * which returns a pointer to a descriptor with static storage duration. The executor (the
 * "host") dlopen()s the library, calls the entry function, checks magic, ABI version and
 * descriptor size, and only then reads the rest. Libraries are never unloaded.
 *
 * This header mirrors the Rust module `shardex_job::abi` field for field; the Rust SDK
 * (crate shardex-job) builds the same structures for Rust plugins.
 *
 * Rules that hold everywhere:
 *   - Only the types below cross the boundary. Plugins never link against the executor;
 *     everything the host offers is in shx_host_api.
 *   - Memory is freed by the side that allocated it. Ownership of every pointer is stated
 *     next to it.
 *   - Strings passed as shx_str are NOT necessarily NUL-terminated and may contain NUL
 *     bytes: always use ptr + len. Text is UTF-8.
 *   - A plugin function must never let a C++ exception, a longjmp or a Rust panic escape.
 *   - Calls on one instance never overlap, but successive calls may come from different
 *     threads. Different instances may run concurrently on different threads.
 *   - abort(), a crash or an endless loop that ignores cancellation takes the whole executor
 *     process down (or keeps it busy): the plugin runs in the executor's address space.
 */
#ifndef SHARDEX_JOB_H
#define SHARDEX_JOB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ASCII bytes "SHXJ" read as a big-endian number. */
#define SHX_MAGIC 0x5348584Au
/* The ABI version this header describes. The host refuses any other version. */
#define SHX_ABI_VERSION 1u
/* The one symbol a plugin exports. */
#define SHX_ENTRY_SYMBOL "shardex_job_plugin_entry"

/* Bits of shx_plugin_descriptor.kinds, and the `kind` argument of create(). */
#define SHX_KIND_SIMPLE 1u   /* execute() */
#define SHX_KIND_DATAFLOW 2u /* fetch_data(), process_data(), free_batch() */

/* Return codes of plugin functions. */
#define SHX_OK 0    /* success */
#define SHX_ERROR 1 /* job error; message given to host->set_error() before returning */
#define SHX_PANIC 2 /* internal failure of the plugin (the Rust SDK: a caught panic); message
                       given to host->set_error(). The host calls nothing on the instance
                       afterwards except destroy(). */

/* Log levels for shx_host_api.log, most severe first. */
#define SHX_LOG_ERROR 1u
#define SHX_LOG_WARN 2u
#define SHX_LOG_INFO 3u
#define SHX_LOG_DEBUG 4u
#define SHX_LOG_TRACE 5u

/* A borrowed byte string: `len` bytes at `ptr`, not NUL-terminated. `ptr` may be NULL only
 * when `len` is 0. Owned by whoever passes it. */
typedef struct shx_str {
    const char *ptr;
    size_t len;
} shx_str;

/* One job property. */
typedef struct shx_property {
    shx_str key;
    shx_str value;
} shx_property;

/* The sharding context of one task. Owned by the host: the same pointer is passed to create()
 * and to every later call on that instance, and it and everything it points to stay valid and
 * unchanged until destroy() has returned. A plugin may keep pointers into it inside its
 * instance, but must not use them after destroy(). */
typedef struct shx_job_context {
    uint32_t struct_size;          /* sizeof(shx_job_context) as the host built it */
    uint32_t sharding_total_count; /* number of shards of the job */
    uint32_t sharding_item;        /* this task's shard, 0 <= item < total */
    uint32_t reserved;             /* always 0 */
    shx_str job_name;
    shx_str task_id;               /* full Mesos task id */
    shx_str item_parameter;        /* this shard's parameter, may be empty */
    shx_str job_parameter;         /* the job-wide parameter, may be empty */
    const shx_property *properties; /* `property_count` entries, keys unique and sorted;
                                       NULL when the count is 0 */
    size_t property_count;
    shx_str work_dir;              /* the task's own work directory, <sandbox>/tasks/<task id>,
                                      raw path bytes; write output files here */
} shx_job_context;

/* Host services. Owned by the host; valid from create() until destroy() has returned. Every
 * function may be called from any thread while the instance lives. Pass `host_ctx` back
 * unchanged as the first argument. The host copies every message before returning, so the
 * plugin may free or reuse its buffer immediately. */
typedef struct shx_host_api {
    uint32_t struct_size; /* sizeof(shx_host_api) as the host built it */
    uint32_t abi_version; /* the host's SHX_ABI_VERSION */
    void *host_ctx;
    /* Writes `len` bytes at `msg` to the executor's log at `level` (SHX_LOG_*), tagged with
     * the task id. */
    void (*log)(void *host_ctx, uint32_t level, const char *msg, size_t len);
    /* Non-zero once the task was asked to stop. Cheap (an atomic load); poll it in loops and
     * return soon after it turns non-zero. */
    int32_t (*is_cancelled)(void *host_ctx);
    /* Records a short progress note. */
    void (*progress)(void *host_ctx, const char *msg, size_t len);
    /* Sets the error message of the call in progress; call it before returning SHX_ERROR or
     * SHX_PANIC. A later call replaces the earlier message. */
    void (*set_error)(void *host_ctx, const char *msg, size_t len);
} shx_host_api;

/* The static description of a plugin, returned by shardex_job_plugin_entry(). The first three
 * fields never move in any ABI version. Function pointers a plugin does not need for its
 * declared kinds may be NULL; create and destroy are always required. */
typedef struct shx_plugin_descriptor {
    uint32_t magic;           /* SHX_MAGIC */
    uint32_t abi_version;     /* SHX_ABI_VERSION */
    uint32_t descriptor_size; /* sizeof(shx_plugin_descriptor) */
    uint32_t kinds;           /* SHX_KIND_* bits the plugin implements */
    const char *name;         /* static, NUL-terminated UTF-8 */
    const char *version;      /* static, NUL-terminated UTF-8 */

    /* Creates an instance of job kind `kind` (exactly one declared SHX_KIND_* bit) for one
     * task. On SHX_OK store the instance pointer (owned by the plugin, may be NULL) in
     * *instance_out. On any other status *instance_out is ignored and destroy() is not
     * called. `ctx` and `host` stay valid until destroy() returns. */
    int32_t (*create)(uint32_t kind, const shx_job_context *ctx, const shx_host_api *host,
                      void **instance_out);

    /* Frees an instance. Called exactly once per successful create(), after its last call. */
    void (*destroy)(void *instance);

    /* SHX_KIND_SIMPLE: runs the job once (once per cron fire for a daemon task). */
    int32_t (*execute)(void *instance, const shx_job_context *ctx);

    /* SHX_KIND_DATAFLOW: fetches the next batch. On SHX_OK store an opaque batch handle owned
     * by the plugin in *batch_out and its item count in *count_out. A count of 0 means "no more
     * data" and its handle may be NULL. Every non-NULL handle is later passed exactly once to
     * process_data() or free_batch(). */
    int32_t (*fetch_data)(void *instance, const shx_job_context *ctx, void **batch_out,
                          size_t *count_out);

    /* SHX_KIND_DATAFLOW: processes a batch. Takes ownership of `batch` whatever it returns. */
    int32_t (*process_data)(void *instance, const shx_job_context *ctx, void *batch);

    /* SHX_KIND_DATAFLOW: frees a batch the host will not process (the task was cancelled
     * between fetch and process). Takes ownership of `batch`; must not fail. */
    void (*free_batch)(void *instance, void *batch);
} shx_plugin_descriptor;

/* The entry point every plugin defines. Callable any number of times; returns the same
 * pointer each time. */
const shx_plugin_descriptor *shardex_job_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* SHARDEX_JOB_H */
