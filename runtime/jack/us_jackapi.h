/* us_jackapi.h — the part of the JACK client API understudy uses, declared
 * here and resolved at run time from libjack.so.0 with dlopen/dlsym, so that
 * the binary builds without JACK headers and runs without libjack (it then
 * says how to install it). The types and constants follow JACK's documented,
 * stable ABI (JACK 1 and JACK 2 share it).
 *
 * The table and the loader are static and compiled only where US_JACK_IMPL
 * is defined: in exactly one C file per cgo package (cgo compiles a Go
 * file's preamble as a C file of its own, which would get a second, empty
 * table). Two packages that both load JACK each get their own table and no
 * symbol clashes at link time. */
#ifndef US_JACKAPI_H
#define US_JACKAPI_H

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct us_jack_client_opaque jack_client_t;
typedef struct us_jack_port_opaque jack_port_t;
typedef uint32_t jack_nframes_t;
typedef uint64_t jack_time_t;
typedef int jack_options_t;
typedef int jack_status_t;
typedef int jack_latency_callback_mode_t;

typedef struct {
    jack_nframes_t min;
    jack_nframes_t max;
} __attribute__((packed)) jack_latency_range_t;

/* jack_options_t */
#define US_JACK_NO_START_SERVER 0x01
#define US_JACK_USE_EXACT_NAME 0x02
#define US_JACK_SERVER_NAME 0x04
/* jack_status_t */
#define US_JACK_FAILURE 0x01
#define US_JACK_INVALID_OPTION 0x02
#define US_JACK_NAME_NOT_UNIQUE 0x04
#define US_JACK_SERVER_FAILED 0x10
#define US_JACK_SERVER_ERROR 0x20
#define US_JACK_VERSION_ERROR 0x400
/* port flags */
#define US_JACK_PORT_IS_INPUT 0x1
#define US_JACK_PORT_IS_OUTPUT 0x2
/* jack_latency_callback_mode_t */
#define US_JACK_CAPTURE_LATENCY 0
#define US_JACK_PLAYBACK_LATENCY 1

#define US_JACK_AUDIO_TYPE "32 bit float mono audio"

typedef int (*us_jack_process_fn)(jack_nframes_t, void *);
typedef int (*us_jack_bufsize_fn)(jack_nframes_t, void *);
typedef int (*us_jack_xrun_fn)(void *);
typedef void (*us_jack_shutdown_fn)(void *);
typedef void (*us_jack_info_shutdown_fn)(jack_status_t, const char *, void *);
typedef void (*us_jack_latency_fn)(jack_latency_callback_mode_t, void *);

#ifdef US_JACK_IMPL
struct us_jack_api {
    void *lib;
    jack_client_t *(*client_open)(const char *, jack_options_t, jack_status_t *, ...);
    int (*client_close)(jack_client_t *);
    char *(*get_client_name)(jack_client_t *);
    int (*activate)(jack_client_t *);
    int (*deactivate)(jack_client_t *);
    jack_port_t *(*port_register)(jack_client_t *, const char *, const char *, unsigned long, unsigned long);
    void *(*port_get_buffer)(jack_port_t *, jack_nframes_t);
    const char *(*port_name)(const jack_port_t *);
    int (*set_process_callback)(jack_client_t *, us_jack_process_fn, void *);
    int (*set_buffer_size_callback)(jack_client_t *, us_jack_bufsize_fn, void *);
    int (*set_xrun_callback)(jack_client_t *, us_jack_xrun_fn, void *);
    void (*on_shutdown)(jack_client_t *, us_jack_shutdown_fn, void *);
    void (*on_info_shutdown)(jack_client_t *, us_jack_info_shutdown_fn, void *); /* optional */
    int (*set_latency_callback)(jack_client_t *, us_jack_latency_fn, void *);   /* optional */
    void (*port_get_latency_range)(jack_port_t *, jack_latency_callback_mode_t, jack_latency_range_t *);
    void (*port_set_latency_range)(jack_port_t *, jack_latency_callback_mode_t, jack_latency_range_t *);
    int (*recompute_total_latencies)(jack_client_t *);
    const char **(*get_ports)(jack_client_t *, const char *, const char *, unsigned long);
    void (*free)(void *);
    int (*connect)(jack_client_t *, const char *, const char *);
    jack_nframes_t (*get_buffer_size)(jack_client_t *);
    jack_nframes_t (*get_sample_rate)(jack_client_t *);
    float (*cpu_load)(jack_client_t *);
    jack_nframes_t (*last_frame_time)(const jack_client_t *);
    int (*get_cycle_times)(const jack_client_t *, jack_nframes_t *, jack_time_t *, jack_time_t *, float *); /* optional */
    jack_time_t (*get_time)(void);
    int (*is_realtime)(jack_client_t *);
    int (*client_real_time_priority)(jack_client_t *);
    pthread_t (*client_thread_id)(jack_client_t *); /* optional; jack_native_thread_t is pthread_t on Linux */
    void (*set_error_function)(void (*)(const char *));
    void (*set_info_function)(void (*)(const char *));
};

static struct us_jack_api us_jk;

/* libjack prints to stderr when a server is absent; the last message is kept
 * here instead, for the error the caller returns. Written only while a
 * client opens, from the thread that opens it. */
static char us_jack_last_msg[256];
static void us_jack_keep_msg(const char *m) {
    snprintf(us_jack_last_msg, sizeof us_jack_last_msg, "%s", m);
}
static void us_jack_drop_msg(const char *m) { (void)m; }

/* Loads the library once. Returns 0, or -1 with a reason in err. Callers
 * serialise it (Go: a sync.Once). */
static int us_jack_load(const char *path, char *err, size_t errlen) {
    if (us_jk.lib) return 0;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "%s", dlerror());
        return -1;
    }
#define US_SYM(field, name, required)                                             \
    do {                                                                        \
        *(void **)(&us_jk.field) = dlsym(h, name);                              \
        if (!us_jk.field && (required)) {                                       \
            snprintf(err, errlen, "%s has no %s: too old a JACK", path, name);  \
            dlclose(h);                                                         \
            memset(&us_jk, 0, sizeof us_jk);                                    \
            return -1;                                                          \
        }                                                                       \
    } while (0)
    US_SYM(client_open, "jack_client_open", 1);
    US_SYM(client_close, "jack_client_close", 1);
    US_SYM(get_client_name, "jack_get_client_name", 1);
    US_SYM(activate, "jack_activate", 1);
    US_SYM(deactivate, "jack_deactivate", 1);
    US_SYM(port_register, "jack_port_register", 1);
    US_SYM(port_get_buffer, "jack_port_get_buffer", 1);
    US_SYM(port_name, "jack_port_name", 1);
    US_SYM(set_process_callback, "jack_set_process_callback", 1);
    US_SYM(set_buffer_size_callback, "jack_set_buffer_size_callback", 1);
    US_SYM(set_xrun_callback, "jack_set_xrun_callback", 1);
    US_SYM(on_shutdown, "jack_on_shutdown", 1);
    US_SYM(on_info_shutdown, "jack_on_info_shutdown", 0);
    US_SYM(set_latency_callback, "jack_set_latency_callback", 0);
    US_SYM(port_get_latency_range, "jack_port_get_latency_range", 0);
    US_SYM(port_set_latency_range, "jack_port_set_latency_range", 0);
    US_SYM(recompute_total_latencies, "jack_recompute_total_latencies", 0);
    US_SYM(get_ports, "jack_get_ports", 1);
    US_SYM(free, "jack_free", 1);
    US_SYM(connect, "jack_connect", 1);
    US_SYM(get_buffer_size, "jack_get_buffer_size", 1);
    US_SYM(get_sample_rate, "jack_get_sample_rate", 1);
    US_SYM(cpu_load, "jack_cpu_load", 1);
    US_SYM(last_frame_time, "jack_last_frame_time", 1);
    US_SYM(get_cycle_times, "jack_get_cycle_times", 0);
    US_SYM(get_time, "jack_get_time", 1);
    US_SYM(is_realtime, "jack_is_realtime", 1);
    US_SYM(client_real_time_priority, "jack_client_real_time_priority", 1);
    US_SYM(client_thread_id, "jack_client_thread_id", 0);
    US_SYM(set_error_function, "jack_set_error_function", 1);
    US_SYM(set_info_function, "jack_set_info_function", 1);
#undef US_SYM
    if (!us_jk.set_latency_callback || !us_jk.port_get_latency_range || !us_jk.port_set_latency_range)
        us_jk.set_latency_callback = NULL; /* all three or none */
    us_jk.lib = h;
    us_jk.set_error_function(us_jack_keep_msg);
    us_jk.set_info_function(us_jack_drop_msg);
    return 0;
}

/* Opens a client without starting a server. server NULL or "": libjack's
 * default ($JACK_DEFAULT_SERVER, else "default"). */
static jack_client_t *us_jack_open(const char *name, const char *server, jack_status_t *st) {
    us_jack_last_msg[0] = 0;
    if (server && server[0])
        return us_jk.client_open(name, US_JACK_NO_START_SERVER | US_JACK_USE_EXACT_NAME | US_JACK_SERVER_NAME, st, server);
    return us_jk.client_open(name, US_JACK_NO_START_SERVER | US_JACK_USE_EXACT_NAME, st);
}

#endif /* US_JACK_IMPL */

#endif
