/* cli.h: table-driven command-line options shared by every command.
 *
 * Each command declares a table of sn_opt; sn_cli_parse fills the
 * destinations, checks every value strictly (whole-string numbers, ranges,
 * choice lists) and reports the first problem as one line naming the
 * option.  The same table prints --help and the resolved configuration.
 *
 * Every command also takes --config FILE: options from an INI file, read
 * with Debian's libinih.  Keys are option names without "--" ('_' may
 * stand for '-'); keys before any section and in the section named after
 * the command word ([train], [search], [latency-table], ...) apply, other
 * sections are ignored.  Comments are whole lines starting with '#' or ';';
 * a value is everything after '=' (white space around it dropped).  Flags
 * take true/false, yes/no, on/off or 1/0; an option whose value may be
 * omitted (SN_OPT_OPTSTR) given as "name =" is given without one.  Values
 * from the file are checked exactly as on the command line and count as
 * given (seen); the command line wins over the file wherever --config
 * stands on it.
 */
#ifndef SN_CLI_H
#define SN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "src/arch.h"

typedef enum sn_opt_kind {
    SN_OPT_FLAG,    /* bool, set to true when present */
    SN_OPT_INT,     /* int64_t within [min, max] */
    SN_OPT_FLOAT,   /* double within [min, max] */
    SN_OPT_STR,     /* const char * (points into argv, into a string
                       literal default, or to a copy kept until
                       sn_cli_release for a value from --config) */
    SN_OPT_OPTSTR,  /* SN_OPT_STR whose value may be omitted ("" then): given as
                       --name=value, or --name value when value does not
                       start with "--" */
} sn_opt_kind;

typedef struct sn_opt {
    const char *name;       /* without the leading "--" */
    sn_opt_kind kind;
    void *dst;              /* bool*, int64_t*, double* or const char** */
    const char *metavar;    /* shown in help, e.g. "N" */
    const char *help;       /* one line; defaults are printed from *dst */
    double min, max;        /* for INT and FLOAT */
    unsigned char seen;     /* set by sn_cli_parse: 0, SN_SEEN_ARGV or SN_SEEN_FILE */
} sn_opt;

/* Where an option's value came from (sn_opt.seen; both are true). */
enum { SN_SEEN_ARGV = 1, SN_SEEN_FILE = 2 };

/* Parses argv[first..argc) into opts (terminated by an entry with name
 * NULL).  Accepts "--name value", "--name=value", and "-x value" for a
 * one-letter option x, and at most one "--config FILE" (or --config=FILE),
 * whose options (see above) apply where the command line gives none; cmd's
 * last word names the file's section.  Positional arguments are stored in
 * pos[0..max_pos) and counted in *n_pos (pos may be NULL when none are
 * accepted); a file gives none.  Returns 1 if --help was given (help
 * printed to stdout, the file not read), SN_OK, or SN_ERR with a message;
 * one about the file names it and the line: "FILE:LINE: ...". */
int sn_cli_parse(const char *cmd, const char *usage, sn_opt *opts, int argc, char **argv,
                 int first, const char **pos, int max_pos, int *n_pos,
                 char *err, size_t errlen);

/* Prints usage and one line per option with its default value. */
void sn_cli_help(FILE *f, const char *cmd, const char *usage, const sn_opt *opts);

/* Frees the copies of --config values that string options point to;
 * call once at exit, after the last use of any option.  Until then they
 * stay reachable (no leak reports). */
void sn_cli_release(void);

/* Writes the resolved configuration, "name = value" for every option, in
 * a form --config reads back to the same values: flags true/false, numbers
 * exact (shortest text that reads back to the same double), an option
 * given without a value as "name =".  A default that no value could give
 * (an unset string, a number outside the option's range such as
 * --steps 0) is a comment, "# name =" or "# steps = 0", so that reading
 * the file leaves it alone.  (A string with a line break or white space at
 * either end cannot be written: INI has no quoting.) */
void sn_cli_write_config(FILE *f, const sn_opt *opts);

/* Compares opts with a configuration written by sn_cli_write_config
 * (stored; keys before its first section count, other sections such as
 * [run] and comments are skipped).  Returns 0 when every option of opts
 * that stored names has the same value now, except those named in the
 * NULL-terminated list ignore (may be NULL); options stored does not name
 * and names opts does not know are no difference.  Returns 1 at the first
 * difference, with e.g. "--lr was 0.001, now 0.002" in what; SN_ERR with a
 * message in what when stored is not INI text. */
int sn_cli_config_diff(const sn_opt *opts, const char *stored, const char *const *ignore,
                       char *what, size_t whatlen);

/* Looks an option up by name (NULL if absent). */
sn_opt *sn_cli_find(sn_opt *opts, const char *name);

/* Parses a comma-separated list of positive ints into out[0..max);
 * returns the count, or SN_ERR with a message naming what. */
int sn_parse_int_list(const char *what, const char *s, int *out, int max,
                      char *err, size_t errlen);

/* The search-space options shared by train and latency-table: the
 * elastic choice lists as given (text), the head width and the stem. */
typedef struct sn_space_flags {
    const char *embed, *heads, *mlp, *depths, *min_depths;
    int64_t head_dim;
    const char *stem;       /* "C1,C2", "C1,C2,C3" or "none" */
} sn_space_flags;

/* The option-table entries of the flags in f (an sn_space_flags lvalue),
 * the same in every command that takes them. */
#define SN_SPACE_OPTIONS(f)                                                                        \
    {"embed-choices", SN_OPT_STR, &(f).embed, "LIST", "search space: embedding widths", 0, 0, 0},   \
    {"heads-choices", SN_OPT_STR, &(f).heads, "LIST", "search space: attention heads per block", 0, \
     0, 0},                                                                                        \
    {"mlp-choices", SN_OPT_STR, &(f).mlp, "LIST", "search space: MLP hidden widths", 0, 0, 0},      \
    {"depths", SN_OPT_STR, &(f).depths, "LIST", "search space: largest depth of each stage", 0, 0,  \
     0},                                                                                           \
    {"min-depths", SN_OPT_STR, &(f).min_depths, "LIST", "search space: smallest depth of each stage",\
     0, 0, 0},                                                                                     \
    {"head-dim", SN_OPT_INT, &(f).head_dim, "D", "search space: channels per attention head", 1,    \
     4096, 0},                                                                                     \
    {"stem", SN_OPT_STR, &(f).stem, "C1,C2[,C3]|none", "image task: a convolutional stem "       \
     "before the patch embedding, 3x3 convolutions of C1, C2 (and C3) channels (all but the "      \
     "first of stride 2; with three the patch a multiple of 4); none: the patches' pixels go "     \
     "straight into it", 0, 0, 0}

/* Points f at the default space's lists, formatted into text (static
 * storage, for option defaults and --help). */
void sn_space_flags_default(sn_space_flags *f);

/* The default space with f's lists and head width (task dimensions left
 * as the default's); SN_ERR naming the flag. */
int sn_space_from_flags(const sn_space_flags *f, sn_space *s, char *err, size_t errlen);

#endif
