/* lib/util/fdtrack.h: what a forked worker must not inherit, and forking
 * while no thread of ours is inside the allocator.
 *
 * Internal fds (sockets to workers, segments, pipes, epoll and event fds)
 * are tracked: a child closes them all right after fork, so that a worker
 * never keeps another worker's socket (EOF detection) or a segment
 * (memory) alive. Process-wide by nature, as fork is.
 *
 * The engine's own threads hold the fork lock (shared) while they run and
 * release it when they block; fork takes it exclusively. So no thread of
 * ours is in the middle of an allocation when a worker is forked: an
 * allocator that is not fork-safe (the sanitizers' are not) cannot leave
 * the child with a lock held forever.
 *
 * Thread safety: every call, from any thread.
 * Fork: tg__fork_begin() before fork(), tg__fork_end() after it in the
 * parent; the child calls tg__fd_close_tracked() first thing.
 */
#ifndef TG_UTIL_FDTRACK_H
#define TG_UTIL_FDTRACK_H

void tg__fd_track(int fd);   /* fd < 0: nothing */
void tg__fd_untrack(int fd);

void tg__fork_busy(void);
void tg__fork_idle(void);

/* Take the fork lock exclusively and freeze the set of tracked fds. */
void tg__fork_begin(void);
void tg__fork_end(void);
/* In the child of a fork made between tg__fork_begin/end. */
void tg__fd_close_tracked(void);

#endif /* TG_UTIL_FDTRACK_H */
