/* search.h: the state of a search (io/FORMAT.md, "Search files"): every
 * evaluated sub-network with its measured values, written atomically after
 * each iteration and when a signal stops the search, so that running
 * `supernest search` again continues it.  Sub-networks of iteration
 * `iteration + 1` are the finished evaluations of an iteration that a
 * signal interrupted. */
#ifndef SN_IO_SEARCH_H
#define SN_IO_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "src/arch.h"

#define SN_SEARCH_MAX_VALUES 8

typedef struct sn_search_state {
    int iteration;              /* iterations done; 0 = the initial population, -1: not even that */
    uint64_t seed;
    char objectives[256];       /* as given, e.g. "acc,latency" */
    char checkpoint[4096];      /* the supernet searched */
    char options[2048];         /* the options that shape the results, one `name = value`
                                   per line ("" in files older than this field) */
    int n_values;               /* measured values per sub-network */
    char value_names[256];      /* comma-separated names of the values */
    int n;                      /* evaluated sub-networks */
    char *nets;                 /* (n, SN_SUBNET_STRLEN) canonical strings; owned */
    double *values;             /* (n, n_values); owned */
    int32_t *iter;              /* (n): iteration that evaluated each; owned */
} sn_search_state;

/* Appends one evaluated sub-network (grows the arrays); SN_ERR on OOM. */
int sn_search_add(sn_search_state *st, const char *net, const double *values, int iteration,
                  char *err, size_t errlen);
void sn_search_free(sn_search_state *st);

/* Writes path atomically (path.tmp, fsync, rename).  One rank only. */
int sn_search_save(const char *path, const sn_search_state *st, char *err, size_t errlen);
/* Reads path into *st (zeroed first; free with sn_search_free). */
int sn_search_load(const char *path, sn_search_state *st, char *err, size_t errlen);

#endif
