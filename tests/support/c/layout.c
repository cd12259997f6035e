/* Prints sizeof/offsetof of the header's structs, one "name value" per line, so the tests can
 * compare the C layout with the Rust definitions in shardex_job::abi. */
#include <stddef.h>
#include <stdio.h>

#include "shardex_job.h"

#define SHOW(expr) printf("%s %zu\n", #expr, (size_t)(expr))

int main(void) {
    SHOW(sizeof(shx_str));
    SHOW(sizeof(shx_property));
    SHOW(offsetof(shx_property, value));
    SHOW(sizeof(shx_job_context));
    SHOW(offsetof(shx_job_context, sharding_total_count));
    SHOW(offsetof(shx_job_context, sharding_item));
    SHOW(offsetof(shx_job_context, job_name));
    SHOW(offsetof(shx_job_context, task_id));
    SHOW(offsetof(shx_job_context, item_parameter));
    SHOW(offsetof(shx_job_context, job_parameter));
    SHOW(offsetof(shx_job_context, properties));
    SHOW(offsetof(shx_job_context, property_count));
    SHOW(offsetof(shx_job_context, work_dir));
    SHOW(sizeof(shx_host_api));
    SHOW(offsetof(shx_host_api, abi_version));
    SHOW(offsetof(shx_host_api, host_ctx));
    SHOW(offsetof(shx_host_api, log));
    SHOW(offsetof(shx_host_api, is_cancelled));
    SHOW(offsetof(shx_host_api, progress));
    SHOW(offsetof(shx_host_api, set_error));
    SHOW(sizeof(shx_plugin_descriptor));
    SHOW(offsetof(shx_plugin_descriptor, abi_version));
    SHOW(offsetof(shx_plugin_descriptor, descriptor_size));
    SHOW(offsetof(shx_plugin_descriptor, kinds));
    SHOW(offsetof(shx_plugin_descriptor, name));
    SHOW(offsetof(shx_plugin_descriptor, version));
    SHOW(offsetof(shx_plugin_descriptor, create));
    SHOW(offsetof(shx_plugin_descriptor, destroy));
    SHOW(offsetof(shx_plugin_descriptor, execute));
    SHOW(offsetof(shx_plugin_descriptor, fetch_data));
    SHOW(offsetof(shx_plugin_descriptor, process_data));
    SHOW(offsetof(shx_plugin_descriptor, free_batch));
    SHOW(SHX_MAGIC);
    SHOW(SHX_ABI_VERSION);
    SHOW(SHX_KIND_SIMPLE);
    SHOW(SHX_KIND_DATAFLOW);
    SHOW(SHX_OK);
    SHOW(SHX_ERROR);
    SHOW(SHX_PANIC);
    SHOW(SHX_LOG_ERROR);
    SHOW(SHX_LOG_TRACE);
    return 0;
}
