/* lib/wire/proto.h: the worker protocol spoken between a tcp executor
 * (a ZeroMQ DEALER per worker) and a worker (a ROUTER): message types,
 * record layouts, flags and limits, and helpers shared by both ends.
 *
 * Every message is multipart. Its first part (after the ROUTER's routing
 * id) is a binary header: u8 type, then fields as below (varint = LEB128,
 * svarint = zigzag LEB128, str = varint length + UTF-8 bytes). Values
 * follow as parts of their own (wire/wire.h).
 *
 * Client to worker:
 *   HELLO   "TGRW", varint protocol, varint keep_min, str client name,
 *           varint misalignment of large parts received (wire/wire.h),
 *           then, from a client connected over a worker's Unix socket
 *           that offers shared memory (wire/shm.h), u8 1, varint fd,
 *           varint size, 16 bytes token: its probe segment.
 *           Must come first; anything else before it drops the peer.
 *   FUNCS   varint n, n x (varint fn id, str name, str version,
 *           u8 origin (TG__ORIGIN_*: 0 program, 1 plugin, 2 builtin),
 *           plugin: 16 bytes digest lo, hi LE, str file base name;
 *           builtin: str library build (tg__library_build), str code id
 *           ("" when the function declares none)). Ids are the client's,
 *           dense from 0.
 *   TASKS   varint run, varint n, n task records; then one value: the
 *           list of inline arguments the records index.
 *     task: varint id, varint fn, u8 kind (0 call, 1 chunk, 2 concat),
 *           varint aux, varint attempts, varint timeout_ms, u8 flags
 *           (TG__RF_*), varint store id (0: none), varint min_us (read
 *           with TG__RF_TIMED, always present), with TG__RF_RESUME only:
 *           varint first attempt (< attempts), then the key: varint
 *           node id + 1 of a generated key (the worker formats it:
 *           tg__key_generated, from the function's name and the kind), or
 *           0 then str key (a user's), then varint nargs,
 *           nargs x arg:
 *             u8 0 inline: varint index into the argument list
 *             u8 1 object: varint id
 *             u8 2 element: varint id, svarint index (of a list object)
 *             u8 3 entry: varint id, str key (of a map object)
 *             u8 4 object, its last use: varint id (dropped once taken)
 *             u8 5 int: svarint (an int constant, in the record: no
 *               entry in the argument list to encode and decode)
 *   PUT     varint id; then one value: store it as object id.
 *   FETCH   varint id: send object id back (VALUE).
 *   FREE    varint n, n x varint id.
 *   CANCEL  varint run: tasks of that run see tg_task_cancelled().
 *   PING    varint token.
 *   BYE     (nothing): forget this client now.
 *   SEG_OK  u8 1 when the client could open the worker's probe segment
 *           (WELCOME), else 0: the worker may send values in segments.
 * Worker to client:
 *   WELCOME "TGRW", varint protocol, u8 status (0 ok, 1 refused), varint
 *           nthreads, str worker name, str message (why refused), varint
 *           misalignment; when the HELLO offered a probe: u8 1 when the
 *           worker could open it (the client may send values in
 *           segments), else 0, then u8 1, varint fd, varint size, 16 bytes
 *           token (the worker's probe segment), or u8 0 (none).
 *   FUNCS   varint n, n x (varint fn id, u8 status TG__FN_*, str detail:
 *           the worker's version (TG__FN_VERSION), where its code comes
 *           from (TG__FN_ORIGIN, tg__func_origin_text) or its code id
 *           ("" when none, TG__FN_CODE)).
 *   RESULTS varint n, varint base (micro-seconds of the worker's
 *           CLOCK_MONOTONIC), n result records; then one value: the list
 *           of inline results the records index.
 *     result: varint task id, varint calls, varint failed calls,
 *           varint micro-seconds from the first call's start to the last
 *           call's end, varint thread + 1 of the worker's pool that made
 *           the calls (0: none made), svarint micro-seconds from base to
 *           the worker's CLOCK_MONOTONIC when the TASKS message carrying
 *           the task was handled (a few bytes, not the clock's eight),
 *           varint micro-seconds from then to the
 *           first call's start (the client converts these to its clock:
 *           lib/offload/results.c), u8 status:
 *             0 inline: varint index
 *             1 kept: varint bytes, u8 shape (0 none, 1 list: varint n,
 *               2 map: varint n, n x str key)
 *             2 failed: svarint code, str message ("" when none)
 *             3 inline and kept (TG__RF_ALSO_KEEP): varint index
 *             4 an int, inline: svarint (no entry in the result list)
 *   VALUE   varint id, u8 status (0 ok: one value follows; 1 unknown)
 *   PONG    varint token.
 *   REFUSED varint id, str why: the value a PUT carried for object id
 *           does not decode (its descriptor and leaves did): it is not
 *           stored, and the client is not dropped for it. The client sends
 *           on results of other workers as they came, without decoding
 *           them: it blames the worker that made this one.
 *   ERROR   str message: the worker dropped this client.
 *   LOG     varint run, str task key, str line: a tg_task_log() line of a
 *           task of that run, sent before the task's result.
 *   LEAVE   varint milliseconds it may go on: the worker drains (it was
 *           told to leave): send it only tasks expected to end within
 *           that time (none when 0; a LEAVE without the field, from a
 *           worker of an older library, means 0); it finishes those it
 *           has, answers FETCHes and PINGs, and ends once every client
 *           said BYE.
 * Joining (lib/worker/join.c to lib/offload/join.c, on a socket of
 * its own: the run binds a ROUTER, a CURVE client with the run's keys;
 * the worker connects a DEALER, a CURVE server with the workers' key and
 * its authentication handler, so each end proves its key as on a worker
 * connection):
 *   JOIN    "TGRW", varint protocol, str the worker's address
 *           ("tcp://HOST:PORT"): connect to me as to any worker.
 *   JOINED  u8 status (0 accepted, 1 refused), str message.
 * Either way:
 *   BULK    a chunk of a large value sent ahead of the message that
 *           carries it (wire/stream.h).
 *   SEG_FREE varint n, n x varint id: segments of the peer's it let go of
 *           (wire/shm.h); only on a connection that uses them.
 *
 * Objects are results kept on the worker (or PUT there), named by ids the
 * client chooses; a task naming an object that a TASKS message earlier in
 * the stream will produce (TG__RF_KEEP with that store id) waits for it.
 *
 * Thread safety: constants and pure helpers only.
 */
#ifndef TG_WIRE_PROTO_H
#define TG_WIRE_PROTO_H

#include <stdint.h>

#include "wire/buf.h"
#include "tgraph/remote.h"

#define TG__PROTO_MAGIC "TGRW"

enum { /* message types */
  TG__M_HELLO = 1,
  TG__M_FUNCS = 2,
  TG__M_TASKS = 3,
  TG__M_PUT = 4,
  TG__M_FETCH = 5,
  TG__M_FREE = 6,
  TG__M_CANCEL = 7,
  TG__M_PING = 8,
  TG__M_BYE = 9,
  TG__M_BULK = 10, /* either way: a chunk of a streamed value (wire/stream.h) */
  TG__M_JOIN = 11, /* worker to a run's join address (not a session) */
  TG__M_SEG_OK = 12,   /* client to worker: its probe segment opened */
  TG__M_SEG_FREE = 13, /* either way: segments let go of (wire/shm.h) */
  TG__M_JOINED = 71, /* the run's answer to JOIN */
  TG__M_LEAVE = 72, /* worker to client: it drains */
  TG__M_REFUSED = 73, /* worker to client: a PUT's value does not decode */
  TG__M_WELCOME = 64,
  TG__M_FUNCS_OK = 65,
  TG__M_RESULTS = 66,
  TG__M_VALUE = 67,
  TG__M_PONG = 68,
  TG__M_ERROR = 69,
  TG__M_LOG = 70,
};

enum { /* task flags */
  TG__RF_RETURN = 1,  /* send the result back whatever its size */
  TG__RF_KEEP = 2,    /* keep the result as the store id whatever its size
                         (recomputing a lost result) */
  TG__RF_SHAPE = 4,   /* when kept and a list or map: say its length/keys */
  TG__RF_TIMED = 8,   /* send the result back if the call took >= min_us
                         (the caller may cache it) */
  TG__RF_ALSO_KEEP = 16, /* when sent back and of keep_min bytes or more,
                         keep it too as the store id (other tasks use it) */
  TG__RF_QUIET = 32,  /* kept (TG__RF_KEEP) and made at the first call: no
                         result record; the client learns it from its
                         dependents' (sent after it, on this worker) */
  TG__RF_RESUME = 64, /* a varint first attempt follows min_us: earlier
                         attempts were lost with their worker */
};

enum { TG__ARG_INLINE = 0, TG__ARG_OBJ = 1, TG__ARG_ELEM = 2, TG__ARG_ENTRY = 3,
       TG__ARG_OBJ_LAST = 4, /* an object, used for the last time: drop it once
                                taken (made) */
       TG__ARG_INT = 5 /* an int, in the record */ };
enum { TG__RS_INLINE = 0, TG__RS_KEPT = 1, TG__RS_FAILED = 2,
       TG__RS_BOTH = 3, /* inline, and kept as the store id */
       TG__RS_INT = 4 /* an int, in the record */ };
enum { TG__SHAPE_NONE = 0, TG__SHAPE_LIST = 1, TG__SHAPE_MAP = 2 };
/* Most items (list) or entries (map) of a shape: the client holds a
 * pointer (an entry) per item, so a longer one is sent back whole, not
 * kept. A worker claiming more is dropped by the client. */
#define TG__MAX_SHAPE ((uint64_t)1 << 20)
enum { /* function check results */
  TG__FN_OK = 0,
  TG__FN_MISSING = 1,
  TG__FN_VERSION = 2,
  TG__FN_ORIGIN = 3, /* other code: another plugin build, a plugin against
                        compiled-in code, another library build */
  TG__FN_CODE = 4,   /* another code id (tg_func_def.code_id), or one side
                        declares one and the other none */
};

/* Limits a worker enforces on what a client sends. */
#define TG__MAX_PARTS 65536        /* parts in one message */
#define TG__MAX_BATCH 65536        /* task records in one TASKS message */
#define TG__MAX_TASK_ARGS (1u << 24)
#define TG__MAX_FUNCS 65536        /* functions one client may define */
#define TG__MAX_KEY 4096           /* bytes of a task key or map key */
#define TG__MAX_NAME 255           /* bytes of a function name / version */
#define TG__MAX_MSG 1024           /* bytes of a message string */

/* A default port, also used when an address has none. */
#define TG__DEFAULT_PORT 7070

/* ---- addresses (addr.c) -------------------------------------------------- */

/* Check a "tcp://HOST:PORT" address (PORT may be "*" for binding) and say
 * whether HOST is loopback. Fills err for anything else (TG_EINVAL). */
int tg__addr_check(const char *addr, bool for_bind, bool *loopback /* OUT */,
                   tg_error *err);
/* The address's host is an IPv6 one, "[...]": the ZeroMQ socket that
 * binds or connects to it needs ZMQ_IPV6 (else "No such device"). */
bool tg__addr_ipv6(const char *addr);

/* ---- keys (keys.c) -------------------------------------------------------- */

struct tg__keyset;
/* Z85 keys as text: 40 characters and a NUL. */
typedef struct tg__keypair {
  char pub[41], sec[41];
} tg__keypair;

/* Read the 40-character Z85 key in file dir/name (trailing whitespace
 * allowed). */
int tg__key_read(const char *dir, const char *name, char out[41], tg_error *err);
/* The keys a worker serves with: from dir (a tg_keys_generate worker/
 * set: worker.key, authorized_clients) or, dir NULL, this user's own
 * (tg__keys_user; the only client key accepted is this user's). *keys
 * gets n client keys (free with tg__free). A directory of the other set,
 * of both or of the old layout is an error saying which to pass. mem
 * (when not NULL): a run's keys in memory instead (tg__keyset below). */
int tg__keys_worker(const char *dir, const struct tg__keyset *mem, tg__keypair *kp,
                    uint8_t (**keys)[32], size_t *n, tg_error *err);
/* The keys a run connects with: from dir (a client/ set: client.key,
 * worker.pub) or, dir NULL, this user's own (the worker must hold this
 * user's key too). */
int tg__keys_client(const char *dir, const struct tg__keyset *mem, tg__keypair *kp,
                    char worker_pub[41], tg_error *err);
/* A run's keys in memory: the set tg_keys_generate writes as files (the
 * workers' pair and the one client pair they accept), for a run that hands
 * the workers their part itself (tg_cluster_start) and keeps no file of
 * them. Passed as `mem` above (dir then NULL), it stands for the directory
 * of its own part. Wipe it (memset) when done. */
typedef struct tg__keyset {
  tg__keypair worker, client; /* a worker's set has no client.sec ("") */
} tg__keyset;
/* Two new pairs. */
int tg__keys_make(tg__keyset *ks, tg_error *err);
/* A worker's set from the workers' secret key and the client's public
 * key (Z85 text as received): TG_EINVAL when either is not a key. */
int tg__keys_for_worker(const char *worker_sec, const char *client_pub, tg__keyset *ks,
                        tg_error *err);
/* This user's key pair for workers and runs without keys, made on first
 * use (wire/userkeys.c) in $XDG_STATE_HOME/tgraph/keys (default
 * ~/.local/state/tgraph/keys): a directory of mode 0700 and a file of mode
 * 0600, both owned by this user; else an error saying what is wrong.
 * Safe when several processes make it at once: all use the first one
 * written. */
int tg__keys_user(tg__keypair *kp, tg_error *err);
/* That private directory, made if missing and checked (err may be NULL). */
int tg__user_key_dir(char *out, size_t size, tg_error *err);

/* ---- this user's worker sockets (wire/usersock.c) ------------------------------ */

/* The path of the Unix socket a keyless worker of this user listening on
 * loopback tcp_addr ("tcp://HOST:PORT") also listens on, in the private
 * directory above, named after HOST (localhost as 127.0.0.1) and PORT.
 * TG_EINVAL (no host or port, no directory), TG_ELIMIT (too long for a
 * socket). */
int tg__user_socket(const char *tcp_addr, char *out, size_t size);
/* Whether a process listens on that socket now. */
bool tg__user_socket_live(const char *path);
/* Read dir/authorized_clients: *keys gets n decoded 32-byte keys (free
 * with tg__free). Blank lines and '#' comments are skipped; a bad line is
 * an error naming it. */
int tg__keys_authorized(const char *dir, uint8_t (**keys)[32], size_t *n,
                        tg_error *err);

#endif /* TG_WIRE_PROTO_H */
