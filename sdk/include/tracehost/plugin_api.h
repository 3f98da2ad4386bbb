/*
 * tracehost plugin API — the C boundary between the host and tracer plugins.
 *
 * This header is the whole contract. A plugin built by a third party with another compiler or
 * standard library loads as long as it speaks this ABI; the host's internals may change freely.
 *
 * Rules that hold for every declaration below:
 *  - Versioning is semantic. A plugin states the API major/minor it was built against; the host
 *    refuses a plugin whose major differs or whose minor is newer than the host's, with
 *    "built for plugin API x.y, host provides a.b".
 *  - Every struct starts with `struct_size` (set by whoever fills the struct, to sizeof of the
 *    struct as that party compiled it) and only ever grows at the end. A reader never touches a
 *    field that lies beyond `struct_size`; fields past it read as zero.
 *  - No exception, longjmp or C++ object crosses this boundary. Strings are NUL-terminated UTF-8.
 *  - Ownership: memory passed in by the caller stays the caller's and is only read during the
 *    call unless said otherwise. Handles (th_bpf_object, th_map, th_metric, …) belong to the host;
 *    a plugin never frees them. Static descriptor data (names, schemas, tables) must stay valid
 *    while the library is loaded, which the host guarantees outlasts every use.
 *  - Errors: every service that can fail returns th_status and fills the caller-owned th_error
 *    (may be NULL when the caller does not care).
 *  - Threads: `create`, `start`, `stop`, `destroy` are called on the host's main thread, one
 *    plugin at a time. Host services may be called from any thread of the plugin during
 *    create/start/stop and from subscriber callbacks; they are thread-safe. Subscriber callbacks
 *    run on a dispatch thread owned by the host (one per subscription).
 */
#ifndef TRACEHOST_PLUGIN_API_H
#define TRACEHOST_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRACEHOST_PLUGIN_API_MAJOR 1
#define TRACEHOST_PLUGIN_API_MINOR 5

/* Name of the exported symbol. It is a Boost.DLL alias: a `const void*` variable named
 * `tracehost_plugin` (in section "boostdll") whose value is the address of a function
 * `const th_plugin_descriptor* fn(void)`. The SDK's TRACEHOST_PLUGIN() macro emits it; a plain C
 * plugin may define `const void* tracehost_plugin = (const void*)&fn;` with default visibility. */
#define TRACEHOST_PLUGIN_SYMBOL "tracehost_plugin"

/* ------------------------------------------------------------------------------------------ */
/* Status and errors                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* What the user will have to act on. */
typedef enum th_status {
  TH_OK = 0,
  TH_ERR_UNSUPPORTED_PLATFORM = 1,  /* wrong OS/arch or a missing host feature */
  TH_ERR_PERMISSION = 2,            /* missing CAP_BPF / CAP_PERFMON / root */
  TH_ERR_KERNEL_INCOMPATIBLE = 3,   /* kernel lacks a feature; the message names it */
  TH_ERR_LOAD_FAILED = 4,           /* object open/load failed; verifier log excerpt included */
  TH_ERR_ATTACH_FAILED = 5,
  TH_ERR_MAP = 6,                   /* map lookup/update/delete/iterate or size mismatch */
  TH_ERR_EVENT = 7,                 /* schema, topic, binding or publish failure */
  TH_ERR_CONFIG = 8,
  TH_ERR_ABI = 9,                   /* plugin/host API mismatch */
  TH_ERR_INVALID_ARGUMENT = 10,
  TH_ERR_NOT_FOUND = 11,            /* also: end of iteration */
  TH_ERR_INTERNAL = 12
} th_status;

#define TH_ERROR_MESSAGE_MAX 4096

/* Filled by the callee, owned by the caller. `message` is always NUL-terminated. */
typedef struct th_error {
  uint32_t struct_size;
  int32_t status;  /* th_status */
  int32_t sys_errno;
  char message[TH_ERROR_MESSAGE_MAX];
} th_error;

/* ------------------------------------------------------------------------------------------ */
/* Values and configuration                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef enum th_value_type {
  TH_VALUE_BOOL = 1,
  TH_VALUE_INT = 2,     /* int64 */
  TH_VALUE_DOUBLE = 3,
  TH_VALUE_STRING = 4,
  TH_VALUE_STRING_LIST = 5,
  TH_VALUE_INT_LIST = 6 /* list of int64 */
} th_value_type;

/* One key of a plugin's config table. The host validates the plugin's `[plugins.NAME]` TOML
 * table against the array of these before `create`: unknown keys, wrong types, values outside
 * [min, max] or not in `choices` are config errors naming file:line:col. Missing keys take the
 * default. */
typedef struct th_config_key {
  uint32_t struct_size;
  const char* name;
  int32_t type;  /* th_value_type */
  const char* doc; /* one line */
  /* defaults: the one matching `type` is used; lists default to empty */
  int32_t default_bool;
  int64_t default_int;
  double default_double;
  const char* default_string;
  /* range for INT, DOUBLE, INT_LIST elements, and list length bounds for lists
   * (has_range = 0: unbounded) */
  int32_t has_range;
  double min;
  double max;
  /* allowed values for STRING / STRING_LIST elements; NULL = any */
  const char* const* choices;
  size_t choice_count;
} th_config_key;

/* Read access to a validated config. Owned by the host, valid until `destroy` returns. */
typedef struct th_config th_config;

/* ------------------------------------------------------------------------------------------ */
/* Event schemas                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* How a field of a packed event struct is read and rendered by sinks. */
typedef enum th_field_type {
  TH_FIELD_UINT = 1,       /* size 1, 2, 4, 8; host byte order */
  TH_FIELD_INT = 2,        /* signed, size 1, 2, 4, 8 */
  TH_FIELD_BOOL = 3,       /* size 1..8, non-zero = true */
  TH_FIELD_STRING = 4,     /* fixed char array, NUL-terminated or full */
  TH_FIELD_IPV4 = 5,       /* size 4, network byte order */
  TH_FIELD_IPV6 = 6,       /* size 16, network byte order */
  TH_FIELD_IP = 7,         /* size 16: IPv4 in the first 4 bytes when `aux_field` (a field
                              holding AF_INET=2 / AF_INET6=10) says so, else IPv6 */
  TH_FIELD_PORT = 8,       /* size 2, host byte order */
  TH_FIELD_ERRNO = 9,      /* signed; renders a negative or positive errno as its name */
  TH_FIELD_DURATION_NS = 10,
  TH_FIELD_TIMESTAMP_NS = 11, /* CLOCK_MONOTONIC (bpf_ktime_get_ns); host converts to wall */
  TH_FIELD_PID = 12,
  TH_FIELD_TID = 13,
  TH_FIELD_UID = 14,
  TH_FIELD_CGROUP_ID = 15,
  TH_FIELD_ENUM = 16,      /* integer rendered by `enum_entries`, unknown values as numbers */
  TH_FIELD_STACK_ID = 17,  /* signed 32-bit stack map id */
  TH_FIELD_HEX = 18,       /* bytes rendered as hex */
  TH_FIELD_FLAGS = 19      /* unsigned, rendered as hex */
} th_field_type;

typedef struct th_enum_entry {
  int64_t value;
  const char* name;
} th_enum_entry;

typedef struct th_field {
  uint32_t struct_size;
  const char* name;
  int32_t type;      /* th_field_type */
  uint32_t offset;   /* byte offset in the record */
  uint32_t size;     /* byte size */
  const char* doc;
  const th_enum_entry* enum_entries; /* TH_FIELD_ENUM */
  size_t enum_count;
  const char* aux_field; /* TH_FIELD_IP: name of the address-family field */
} th_field;

/* A topic ("syscall.exec") and the layout of its records. Records are fixed-size prefixes:
 * a record shorter than `record_size` is refused; a longer one keeps its tail (e.g. variable
 * strings) but sinks render only the declared fields. */
typedef struct th_event_schema {
  uint32_t struct_size;
  const char* topic;
  const char* doc;
  uint32_t record_size;
  const th_field* fields;
  size_t field_count;
} th_event_schema;

/* What a subscriber receives. Valid only during the callback. */
typedef struct th_event {
  uint32_t struct_size;
  const char* topic;
  const th_event_schema* schema;
  const void* data;
  uint32_t size;
  uint64_t time_ns; /* wall clock (CLOCK_REALTIME ns) at which the host took the record */
} th_event;

/* Called on a host dispatch thread with a batch of events (count >= 1). */
typedef void (*th_event_batch_fn)(void* user, const th_event* events, size_t count);

/* ------------------------------------------------------------------------------------------ */
/* Metrics                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef enum th_metric_type {
  TH_METRIC_COUNTER = 1,
  TH_METRIC_GAUGE = 2,
  TH_METRIC_HISTOGRAM = 3
} th_metric_type;

/* A family. `name` is without the host prefix: "syscall_calls" becomes
 * "tracehost_syscall_calls_total". Values are in base units (seconds, bytes). */
typedef struct th_metric_family {
  uint32_t struct_size;
  const char* name;
  const char* help;
  int32_t type; /* th_metric_type */
  const char* const* label_names;
  size_t label_count;
  /* HISTOGRAM fed by plugin code: upper bounds, ascending; ignored for map-bound log2 histograms */
  const double* buckets;
  size_t bucket_count;
  /* distinct label sets kept before the rest fold into label value "other" (0 = host default) */
  uint32_t max_series;
} th_metric_family;

typedef enum th_metric_op {
  TH_METRIC_ADD = 1,     /* counter, gauge */
  TH_METRIC_SET = 2,     /* gauge */
  TH_METRIC_OBSERVE = 3, /* histogram */
  TH_METRIC_REMOVE = 4   /* API 1.1; gauge: drop the series with these label values (value
                          * ignored; no error when there is none), e.g. a "top N" whose members
                          * change */
} th_metric_op;

/* Flags of event_bind_ringbuf_flags (API 1.1). */
typedef enum th_ringbuf_flags {
  /* The BPF side wakes the host for every record (commits without BPF_RB_NO_WAKEUP), so the
   * host need not poll this ring every [host] poll_interval_ms: a host whose rings all have
   * this flag sleeps until a record arrives. For rare records (a few per second at most). */
  TH_RINGBUF_PRODUCER_WAKES = 1u << 0,
  /* The ring was declared with TH_STAGED_RINGBUF (bpf/include/tracehost/events.bpf.h): a
   * record holds one or more events of the topic's record_size back to back, and the object
   * has the map "<ring>_staged" and the program "<ring>_flush", which the host runs before a
   * poll round on every CPU whose stage has held events for half a poll interval (API 1.5;
   * 1.4: whenever it holds any), and at stop on every CPU whose stage holds any (API 1.4). */
  TH_RINGBUF_STAGED = 1u << 1
} th_ringbuf_flags;

typedef enum th_key_field_kind {
  TH_KEY_UINT = 1,   /* unsigned integer of size 1, 2, 4, 8 */
  TH_KEY_INT = 2,
  TH_KEY_STRING = 3, /* fixed char array */
  TH_KEY_ENUM = 4,   /* integer rendered with enum_entries */
  TH_KEY_ERRNO = 5,
  TH_KEY_IP = 6      /* 4 or 16 bytes, network order; 16 bytes holding an IPv4-mapped address
                        (::ffff:a.b.c.d) render as IPv4 */
} th_key_field_kind;

/* One label taken from a map key. */
typedef struct th_key_label {
  uint32_t struct_size;
  const char* label;  /* must be one of the family's label_names */
  int32_t kind;       /* th_key_field_kind */
  uint32_t offset;
  uint32_t size;
  const th_enum_entry* enum_entries;
  size_t enum_count;
} th_key_label;

typedef enum th_value_kind {
  TH_BIND_VALUE_U64 = 1,     /* a u64 at value_offset: counter or gauge value */
  TH_BIND_VALUE_LOG2_HIST = 2 /* u64 slots[slot_count] at value_offset; slot i counts values in
                                 [2^i, 2^(i+1)) (slot 0 also holds 0), the last slot everything
                                 from 2^(slot_count-1) up (clamp into it; rendered le="+Inf");
                                 sum at sum_offset */
} th_value_kind;

/* Binds a BPF map to a family: read on every scrape/interval, each key → one series. Per-CPU
 * maps are summed across CPUs. Values are multiplied by `scale` (e.g. 1e-9 for ns → seconds). */
typedef struct th_map_binding {
  uint32_t struct_size;
  const th_key_label* labels;
  size_t label_count;
  int32_t value_kind; /* th_value_kind */
  uint32_t value_offset;
  uint32_t slot_count;
  uint32_t sum_offset;
  double scale; /* 0 is read as 1 */
  /* skip keys whose value is all zero (e.g. unused array slots) */
  int32_t skip_zero;
} th_map_binding;

/* ------------------------------------------------------------------------------------------ */
/* BPF: objects, attach specs, maps                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct th_bpf_object th_bpf_object; /* owned by the host */
typedef struct th_map th_map;               /* owned by the host */
typedef struct th_metric th_metric;         /* owned by the host */
typedef uint64_t th_probe_id;               /* 0 is never a valid id */
typedef uint64_t th_subscription_id;        /* 0 is never a valid id */

typedef enum th_attach_kind {
  TH_ATTACH_TRACEPOINT = 1, /* target "category:name"; needs tracefs (the host mounts it) */
  TH_ATTACH_RAW_TP = 2,     /* target "name" */
  TH_ATTACH_TP_BTF = 3,     /* target "name" (must match the program's SEC("tp_btf/name")) */
  TH_ATTACH_UPROBE = 4,     /* target binary path; symbol or offset; pid (-1 = all) */
  TH_ATTACH_URETPROBE = 5,
  TH_ATTACH_PERF_EVENT = 6, /* software cpu-clock on every online CPU */
  TH_ATTACH_KPROBE = 7,     /* target kernel function */
  TH_ATTACH_KRETPROBE = 8
} th_attach_kind;

typedef struct th_attach_spec {
  uint32_t struct_size;
  int32_t kind;        /* th_attach_kind */
  const char* target;  /* see th_attach_kind */
  const char* symbol;  /* uprobe: function name (NULL: use offset) */
  uint64_t offset;     /* uprobe: file offset or offset from symbol */
  int32_t pid;         /* uprobe: -1 = every process */
  uint64_t frequency;  /* perf_event: samples per second per CPU (0: use period) */
  uint64_t period;     /* perf_event: period in ns of cpu-clock */
  int32_t deferred;    /* non-zero: declare now, attach on bpf_attach_deferred() */
} th_attach_spec;

typedef enum th_probe_state {
  TH_PROBE_DECLARED = 1,
  TH_PROBE_ATTACHED = 2,
  TH_PROBE_DETACHED = 3,
  TH_PROBE_FAILED = 4,
  TH_PROBE_PAUSED = 5 /* API 1.3: bpf_probe_set_enabled(..., 0); resumable */
} th_probe_state;

typedef struct th_probe_info {
  uint32_t struct_size;
  th_probe_id id;
  const char* program;  /* valid during the callback */
  int32_t kind;         /* th_attach_kind */
  const char* target;
  int32_t state;        /* th_probe_state */
  uint32_t link_count;  /* perf_event: one link per CPU */
  const char* error;    /* TH_PROBE_FAILED: why */
} th_probe_info;

typedef void (*th_probe_info_fn)(void* user, const th_probe_info* info);

/* Receives what a BPF iterator program writes (bpf_seq_write / bpf_seq_printf), chunk by chunk
 * in order (API 1.2). The chunk is valid during the call only. */
typedef void (*th_iter_output_fn)(void* user, const void* data, size_t size);

typedef struct th_map_info {
  uint32_t struct_size;
  const char* name;    /* "plugin/map"; valid while the map lives */
  uint32_t type;       /* enum bpf_map_type */
  uint32_t key_size;
  uint32_t value_size; /* per CPU for per-CPU maps */
  uint32_t max_entries;
  uint32_t per_cpu;    /* non-zero for per-CPU maps */
  uint32_t ncpus;      /* possible CPUs (per-CPU value count) */
} th_map_info;

/* map_lookup flags */
#define TH_MAP_PERCPU_SUM 0x0u /* per-CPU maps: value = sum over CPUs of u64 words (value_size
                                  must be a multiple of 8) */
#define TH_MAP_PERCPU_RAW 0x1u /* per-CPU maps: value buffer holds ncpus values, each rounded
                                  up to 8 bytes */

typedef enum th_log_level {
  TH_LOG_TRACE = 0,
  TH_LOG_DEBUG = 1,
  TH_LOG_INFO = 2,
  TH_LOG_WARN = 3,
  TH_LOG_ERROR = 4
} th_log_level;

/* ------------------------------------------------------------------------------------------ */
/* Host services                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* The per-plugin context of the host. Opaque. */
typedef struct th_host th_host;

/* Handed to `create`; valid until `destroy` returns. Every function is required (never NULL)
 * in the version that introduced it; check struct_size before using a later addition. */
typedef struct th_host_api {
  uint32_t struct_size;
  uint32_t api_major;
  uint32_t api_minor;
  th_host* host;

  /* --- logging: goes to the host's spdlog sinks, tagged with the plugin name --- */
  void (*log)(th_host* host, int32_t level /* th_log_level */, const char* message);

  /* --- config: typed reads of the validated table (defaults applied) --- */
  /* TH_ERR_NOT_FOUND for a key not in the plugin's schema, TH_ERR_CONFIG for a type mismatch. */
  th_status (*config_bool)(th_host* host, const char* key, int32_t* out, th_error* err);
  th_status (*config_int)(th_host* host, const char* key, int64_t* out, th_error* err);
  th_status (*config_double)(th_host* host, const char* key, double* out, th_error* err);
  /* returned string owned by the host, valid until destroy */
  th_status (*config_string)(th_host* host, const char* key, const char** out, th_error* err);
  th_status (*config_list_size)(th_host* host, const char* key, size_t* out, th_error* err);
  th_status (*config_list_string)(th_host* host, const char* key, size_t index, const char** out,
                                  th_error* err);
  th_status (*config_list_int)(th_host* host, const char* key, size_t index, int64_t* out,
                               th_error* err);

  /* --- BPF objects --- */
  /* Opens an object from ELF bytes (copied by the host). `name` names it in logs and map names
   * ("plugin/map"). Checks privileges and BTF and names what is missing. */
  th_status (*bpf_open)(th_host* host, const char* name, const void* elf, size_t size,
                        th_bpf_object** out, th_error* err);
  /* Sets a `const volatile` variable of .rodata before load; size must match the variable. */
  th_status (*bpf_set_rodata)(th_host* host, th_bpf_object* obj, const char* variable,
                              const void* value, size_t size, th_error* err);
  /* Resizes a map before load (e.g. a ring buffer to a configured size). */
  th_status (*bpf_set_map_max_entries)(th_host* host, th_bpf_object* obj, const char* map,
                                       uint32_t max_entries, th_error* err);
  /* Enables/disables auto-loading of a program before load (unused optional probes). */
  th_status (*bpf_set_autoload)(th_host* host, th_bpf_object* obj, const char* program,
                                int32_t autoload, th_error* err);
  /* Loads; on verifier rejection the error carries the tail of the verifier log. Registers the
   * object's maps as "plugin/map" in the map registry. */
  th_status (*bpf_load)(th_host* host, th_bpf_object* obj, th_error* err);
  /* Attaches program `program` as `spec` says (or declares it when spec->deferred). */
  th_status (*bpf_attach)(th_host* host, th_bpf_object* obj, const char* program,
                          const th_attach_spec* spec, th_probe_id* out, th_error* err);
  /* Attaches every probe of this plugin declared as deferred. */
  th_status (*bpf_attach_deferred)(th_host* host, th_error* err);
  th_status (*bpf_detach)(th_host* host, th_probe_id probe, th_error* err);
  /* Calls fn for every probe of this plugin, in declaration order. */
  th_status (*bpf_list_probes)(th_host* host, th_probe_info_fn fn, void* user, th_error* err);

  /* --- maps (registry-wide: "plugin/map", or "map" for one of the caller's own) --- */
  th_status (*map_find)(th_host* host, const char* name, th_map** out, th_error* err);
  th_status (*map_info)(th_host* host, th_map* map, th_map_info* out, th_error* err);
  /* TH_ERR_NOT_FOUND when the key is absent. Sizes are checked against the map. */
  th_status (*map_lookup)(th_host* host, th_map* map, const void* key, size_t key_size,
                          void* value, size_t value_size, uint32_t flags, th_error* err);
  /* flags: BPF_ANY / BPF_NOEXIST / BPF_EXIST. Per-CPU maps take ncpus values (8-byte aligned)
   * unless value_size equals the per-CPU value size, which then goes to every CPU. */
  th_status (*map_update)(th_host* host, th_map* map, const void* key, size_t key_size,
                          const void* value, size_t value_size, uint64_t flags, th_error* err);
  th_status (*map_delete)(th_host* host, th_map* map, const void* key, size_t key_size,
                          th_error* err);
  /* key NULL: first key. TH_ERR_NOT_FOUND after the last key. */
  th_status (*map_next_key)(th_host* host, th_map* map, const void* key, void* next_key,
                            size_t key_size, th_error* err);

  /* --- events --- */
  /* Registers a topic's schema (copied). Topics declared in the descriptor are registered by
   * the host before create. Duplicate topic names are an error. */
  th_status (*event_register)(th_host* host, const th_event_schema* schema, th_error* err);
  /* Binds a BPF_MAP_TYPE_RINGBUF map to a topic: its records go onto the bus with no plugin code
   * per event. If the object has a map named "<map>_drops" (per-CPU array, one u64, see
   * bpf/include/tracehost/events.bpf.h), its value is reported as kernel-side drops. */
  th_status (*event_bind_ringbuf)(th_host* host, th_map* ringbuf, const char* topic,
                                  th_error* err);
  /* Publishes one record from user space (copied). */
  th_status (*event_publish)(th_host* host, const char* topic, const void* data, size_t size,
                             th_error* err);
  /* Subscribes to topics matching a glob ("syscall.*"). fn runs on a host dispatch thread. */
  th_status (*event_subscribe)(th_host* host, const char* topic_glob, th_event_batch_fn fn,
                               void* user, th_subscription_id* out, th_error* err);
  th_status (*event_unsubscribe)(th_host* host, th_subscription_id id, th_error* err);

  /* --- metrics --- */
  /* Registers a family (copied). Families declared in the descriptor are registered before
   * create; find them with metric_find. */
  th_status (*metric_register)(th_host* host, const th_metric_family* family, th_metric** out,
                               th_error* err);
  th_status (*metric_find)(th_host* host, const char* name, th_metric** out, th_error* err);
  /* label_values: one per label name of the family, in order. */
  th_status (*metric_update)(th_host* host, th_metric* metric, const char* const* label_values,
                             size_t label_count, int32_t op /* th_metric_op */, double value,
                             th_error* err);
  th_status (*metric_bind_map)(th_host* host, th_metric* metric, th_map* map,
                               const th_map_binding* binding, th_error* err);

  /* --- API 1.1 (check struct_size before use) --- */
  /* event_bind_ringbuf with flags (th_ringbuf_flags). */
  th_status (*event_bind_ringbuf_flags)(th_host* host, th_map* ringbuf, const char* topic,
                                        uint32_t flags, th_error* err);

  /* --- API 1.2 (check struct_size before use) --- */
  /* Runs the iterator program `program` (SEC("iter/...")) of a loaded object once, from start
   * to end, on the calling thread: the host creates the iterator, reads it to the end, passing
   * its output to fn (NULL: discarded), and closes it. For one-off walks of kernel objects,
   * e.g. sockets that existed before the plugin started (SEC("iter/task_file")). */
  th_status (*bpf_run_iter)(th_host* host, th_bpf_object* obj, const char* program,
                            th_iter_output_fn fn, void* user, th_error* err);

  /* --- API 1.3 (check struct_size before use) --- */
  /* Pauses (enabled = 0) or resumes (enabled != 0) an attached probe of this plugin, keeping
   * its id: pausing destroys its links, so the kernel stops calling the program (no dispatch
   * cost at all, unlike a flag the program tests); resuming attaches it again from the same
   * spec. For probes a plugin runs part of the time, e.g. sampling windows on a per-packet
   * tracepoint. Pausing a paused probe or resuming an attached one does nothing. TH_ERR_NOT_FOUND
   * for an unknown id; TH_ERR_INVALID_ARGUMENT for a probe that is declared, detached or failed.
   * A resume that fails leaves the probe TH_PROBE_FAILED with the reason. Each call creates or
   * destroys kernel links (on tracepoints the kernel patches the call site): a few per second
   * are cheap, thousands are not. Any plugin thread. */
  th_status (*bpf_probe_set_enabled)(th_host* host, th_probe_id probe, int32_t enabled,
                                     th_error* err);

  /* --- API 1.5 (check struct_size before use) --- */
  /* Says that this plugin does not produce its topic `topic` in this run, and why: `reason` is
   * for people, e.g. the config key that turned it off ("open = false") or what the kernel
   * lacks. The console shows the topic as off with the reason instead of a row of zeros,
   * tracehost_events_topic_muted says 1, and a sink or plugin that subscribes to it by its exact
   * name gets a warning at start. Binding a ring buffer to the topic later turns it on again.
   * TH_ERR_NOT_FOUND for an unknown topic; TH_ERR_INVALID_ARGUMENT for another plugin's topic or
   * an empty reason. From create or start. */
  th_status (*event_set_off)(th_host* host, const char* topic, const char* reason, th_error* err);
} th_host_api;

/* ------------------------------------------------------------------------------------------ */
/* The plugin descriptor                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef void th_instance; /* the plugin's own object */

typedef struct th_plugin_descriptor {
  uint32_t struct_size;
  uint32_t api_major; /* TRACEHOST_PLUGIN_API_MAJOR the plugin was built with */
  uint32_t api_minor;
  const char* name;   /* [a-z0-9_]+, unique; the config table is [plugins.<name>] */
  const char* version;
  const char* description;

  const th_config_key* config_keys;
  size_t config_key_count;
  const th_event_schema* topics; /* registered by the host before create */
  size_t topic_count;
  const th_metric_family* metrics; /* registered by the host before create */
  size_t metric_count;

  /* Required. Builds the instance; may use every host service except bpf_attach_deferred.
   * On failure returns non-TH_OK, fills err and leaves *out NULL. Main thread. */
  th_status (*create)(const th_host_api* host, th_instance** out, th_error* err);
  /* Required. Opens, loads and attaches BPF, binds maps and ring buffers. The host attaches
   * deferred probes right after a successful start. Main thread. */
  th_status (*start)(th_instance* instance, th_error* err);
  /* Optional (NULL). Called before the host detaches the plugin's probes; stop plugin threads
   * here. Must not fail. Main thread. */
  void (*stop)(th_instance* instance);
  /* Required. Frees the instance. Called after stop (or after a failed create/start), once the
   * host has drained the bus of the plugin's subscriptions. Main thread. */
  void (*destroy)(th_instance* instance);
} th_plugin_descriptor;

/* The function the exported alias points to. */
typedef const th_plugin_descriptor* (*th_plugin_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TRACEHOST_PLUGIN_API_H */
