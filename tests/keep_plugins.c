/* keep_plugins.c: a dlclose that unloads nothing, preloaded (LD_PRELOAD)
 * into every process of the sanitizer test setup (meson.build, `meson test
 * --setup asan`).
 *
 * LeakSanitizer matches a leak's suppression (tests/lsan.supp) against the
 * modules on the leak's allocation stack.  Open MPI and PMIx unload their
 * plugins (mca_*.so) in MPI_Finalize, before LeakSanitizer looks, so a
 * block a plugin kept shows an "<unknown module>" frame that no suppression
 * can name.  Walking further up, into libmpi, needs the slow unwinder on
 * every malloc (ASAN_OPTIONS fast_unwind_on_malloc=0), which doubled the
 * start-up time of every sanitized supernest.  With the plugins kept mapped
 * until exit their names are known and the fast unwinder suffices.
 *
 * Built without sanitizers (it is preloaded into mpiexec, the shell and
 * Python too); returns success as dlclose does. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
