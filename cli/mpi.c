/* cli/mpi.c: `tgraph run --scheduler=mpi` under mpirun, mpiexec or srun:
 * rank 0 reads the graph and drives the run; every other rank serves it
 * (tgraph/cluster.h) and never reads the graph. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tgraph/cluster.h"

static tg_cluster_opts opts_of(const cli_mpi *m, unsigned workers) {
  tg_cluster_opts o = {.version = TG_CLUSTER_OPTS_V1, .run_dir = m->run_dir,
                       .address = m->address, .nthreads = workers, .workers = workers,
                       .timeout = m->timeout, .verbose = cli_verbosity > 0};
  return o;
}

int cli_mpi_rank(unsigned *rank) {
  unsigned size;
  tg_error err;
  tg_error_clear(&err);
  if (tg_cluster_rank(rank, &size, &err) != TG_OK) {
    cli_error("--scheduler=mpi: %s", err.msg);
    return CLI_USAGE;
  }
  return -1;
}

int cli_mpi_serve(const cli_mpi *m, unsigned workers, unsigned rank) {
  tg_registry *reg = NULL;
  if (tg_registry_new(&reg) != TG_OK || tg_registry_add_builtins(reg) != TG_OK) {
    tg_registry_free(reg);
    cli_error("out of memory");
    return CLI_USAGE;
  }
  tg_cluster_opts o = opts_of(m, workers);
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  /* Returns only when this rank could not serve: it exits when done. */
  tg_cluster_start(reg, &o, &ex, &err);
  cli_error("--scheduler=mpi: rank %u: %s", rank, err.msg);
  tg_executor_free(ex);
  tg_registry_free(reg);
  return CLI_USAGE;
}

int cli_mpi_executor(const cli_mpi *m, unsigned workers, tg_registry *reg,
                     const tg_graphjson_info *info, tg_executor **out) {
  const char **paths = calloc(info->nplugins + 1, sizeof *paths);
  if (paths == NULL) {
    cli_error("out of memory");
    return CLI_USAGE;
  }
  for (size_t i = 0; i < info->nplugins; i++) paths[i] = info->plugins[i].path;
  tg_cluster_opts o = opts_of(m, workers);
  o.plugins = paths;
  o.nplugins = info->nplugins;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_cluster_start(reg, &o, out, &err);
  free(paths);
  if (rc != TG_OK) {
    cli_error("--scheduler=mpi: %s", err.msg);
    return CLI_USAGE;
  }
  return -1;
}
