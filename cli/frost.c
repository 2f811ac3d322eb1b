/* frost: the command-line driver.
 *
 *   frost compile FILE [options]   model file -> NAME.o + NAME.h
 *
 * Exit status: 0 success, 1 bad input (diagnostics on stderr), 2 bad usage.
 * Outputs are written to temporaries beside their destination and renamed at
 * the end, so a failed run leaves nothing half-written behind: every error
 * path removes them, and so does a signal that ends the process (below).
 */
#include "ir.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FROST_VERSION
#define FROST_VERSION "unknown"
#endif

enum { EXIT_BAD_INPUT = 1, EXIT_USAGE = 2 };
/* Returned by the argument parser when an option did all the work
 * (`--mcpu help`): main exits 0. */
enum { DONE_EARLY = -1 };

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
static const char usage_text[] =
    "usage: frost compile FILE [options]      model -> OUT.o + OUT.h\n"
    "       frost plan FILE [options]         every buffer: role, bytes, live steps, arena offset\n"
    "       frost compare FILE [options]      memory per freeze configuration\n"
    "       frost dot FILE [options]          liveness graph (Graphviz DOT or SVG)\n"
    "       frost --help | --version\n"
    "\n"
    "Compile a model file into an object file and a C header with forward,\n"
    "backward, inference and init functions and a static memory plan, or show\n"
    "that plan.\n"
    "\n"
    "options:\n"
    "  -o OUT.o              object file (default: FILE's base name with .o, in the current directory)\n"
    "  --header OUT.h        header (default: OUT.o with .h)\n"
    "  -D NAME=VALUE         override `const NAME` of the model file (integer)\n"
    "  --config NAME         freeze configuration (default: the file's `default`, else all trainable);\n"
    "                        `all` and `none` always exist\n"
    "  --train PATTERN       also train the params matching PATTERN (glob: * ? [..]); repeatable\n"
    "  --freeze PATTERN      freeze the params matching PATTERN; repeatable, applied after --train\n"
    "  --grad INPUT          also compute d loss / d INPUT; repeatable\n"
    "  --optimizer NAME      optimizer compiled into P_update / P_train_step: sgd or adamw\n"
    "                        (default: the model's `optimizer` statement, else sgd)\n"
    "  --opt KEY=VALUE       its default hyper-parameters (lr, momentum, dampening, nesterov,\n"
    "                        weight_decay; adamw: lr, beta1, beta2, eps, weight_decay); repeatable\n"
    "  --batchnorm-eval      batch norm uses its running statistics in training too\n"
    "  --name PREFIX         prefix of the generated symbols and macros (default: the model name)\n"
    "  -O0 -O1 -O2 -O3       optimisation level of the generated code (default -O3)\n"
    "  --mcpu CPU            target CPU (default: this machine's; --mcpu help lists them)\n"
    "  --triple TRIPLE       target triple (default: this machine's)\n"
    "  --format FMT          plan: text|json|svg; compare: text|markdown|csv|json|svg; dot: dot|svg\n"
    "                        (default: svg when -o names a .svg file, else text, or dot for dot)\n"
    "  --steps               plan: also list every step: kernel, node, live bytes, reads, writes\n"
    "  --only PATTERN        dot: only the nodes matching PATTERN or lying under a match\n"
    "                        (layer2.* or layer2); repeatable\n"
    "  --from NAME           dot: start at the first node named NAME or lying under it (NAME.*)\n"
    "  --to NAME             dot: end at the last node named NAME or lying under it\n"
    "  --collapse, --expand  dot: one node per def call (and phase), or one per step (default:\n"
    "                        collapse above " STRINGIFY(VIEW_COLLAPSE_STEPS) " steps)\n"
    "\n"
    "compare takes --config repeatedly (default: every configuration of the file,\n"
    "plus all and none); plan, compare and dot write to -o OUT or standard output.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "frost: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'frost --help'.\n");
    return EXIT_USAGE;
}

/* Whole file, NUL-terminated; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                buf = NULL;
            }
            buf = grown;
        }
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || err) {
        free(buf);
        errno = err ? err : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* "dir/model.frost" -> "model" + ext */
static char *default_output(pool *p, const char *input, const char *ext) {
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return pool_printf(p, "%.*s%s", (int)n, base, ext);
}

static char *replace_ext(pool *p, const char *path, const char *ext) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    size_t n = dot && (!slash || dot > slash + 1) ? (size_t)(dot - path) : strlen(path);
    return pool_printf(p, "%.*s%s", (int)n, path, ext);
}

/* ---------------------------------------------------------------- temporaries
 *
 * cli_temps lists the temporaries that exist, for the signal handler, which
 * only reads it and calls unlink(). It and the files it names change only
 * with the handled signals blocked, so the handler never sees a file without
 * its entry or an entry half written. Handled: termination requests, a closed
 * pipe, and abort() (ir_panic, LLVM's fatal errors). A crash (SIGSEGV, ...)
 * keeps the default action: the sanitizers report it better than a handler
 * running in a broken process could clean up. */
enum { CLI_MAX_TEMPS = 4 };
static char *volatile cli_temps[CLI_MAX_TEMPS];
static const int cli_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGABRT};
static sigset_t cli_signal_set;
static mode_t cli_umask; /* cli_init reads it: umask() is read by setting it */

static void cli_on_signal(int sig) {
    for (int k = 0; k < CLI_MAX_TEMPS; k++)
        if (cli_temps[k])
            unlink(cli_temps[k]);
    /* Die of the same signal, as the caller expects: it is blocked while the
     * handler runs and arrives, with the default action, when it returns. */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Once, before any temporary exists. */
static void cli_init(void) {
    cli_umask = umask(0);
    umask(cli_umask);
    sigemptyset(&cli_signal_set);
    for (size_t k = 0; k < sizeof cli_signals / sizeof *cli_signals; k++)
        sigaddset(&cli_signal_set, cli_signals[k]);
    struct sigaction sa = {.sa_handler = cli_on_signal, .sa_mask = cli_signal_set};
    for (size_t k = 0; k < sizeof cli_signals / sizeof *cli_signals; k++) {
        struct sigaction old;
        /* a signal that whoever started us ignores (nohup, a background job) stays ignored */
        if (sigaction(cli_signals[k], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(cli_signals[k], &sa, NULL);
    }
}

static void cli_block(sigset_t *old) { sigprocmask(SIG_BLOCK, &cli_signal_set, old); }
static void cli_unblock(const sigset_t *old) { sigprocmask(SIG_SETMASK, old, NULL); }

static void forget_temp(const char *tmp) {
    for (int k = 0; k < CLI_MAX_TEMPS; k++)
        if (cli_temps[k] == tmp)
            cli_temps[k] = NULL;
}

/* Remove a temporary (NULL: none) and forget it. */
static void drop_temp(char *tmp) {
    if (!tmp)
        return;
    sigset_t old;
    cli_block(&old);
    unlink(tmp);
    forget_temp(tmp);
    cli_unblock(&old);
}

/* Rename a temporary over its destination and forget it; false with errno
 * set, the temporary still there for drop_temp. */
static bool commit_temp(char *tmp, const char *final) {
    sigset_t old;
    cli_block(&old);
    bool ok = rename(tmp, final) == 0;
    int err = errno;
    if (ok)
        forget_temp(tmp);
    cli_unblock(&old);
    errno = err;
    return ok;
}

/* A temporary beside `final`, so that rename() stays on one file system,
 * with the mode a compiler's output gets (0666 minus the umask; mkstemp
 * makes it 0600). NULL after a message. */
static char *make_temp(pool *p, const char *final) {
    char *tmp = pool_printf(p, "%s.tmp-XXXXXX", final);
    int slot = 0;
    while (slot < CLI_MAX_TEMPS && cli_temps[slot])
        slot++;
    IR_ASSERT(slot < CLI_MAX_TEMPS);
    sigset_t old;
    cli_block(&old);
    int fd = mkstemp(tmp), err = errno;
    if (fd >= 0)
        cli_temps[slot] = tmp;
    cli_unblock(&old);
    if (fd < 0) {
        fprintf(stderr, "frost: error: cannot write '%s': %s\n", final, strerror(err));
        return NULL;
    }
    if (fchmod(fd, 0666 & ~cli_umask) != 0) {
        fprintf(stderr, "frost: error: cannot write '%s': %s\n", final, strerror(errno));
        close(fd);
        drop_temp(tmp);
        return NULL;
    }
    close(fd);
    return tmp;
}

typedef struct {
    const char *input, *object, *header, *format;
    const char **configs; /* every --config, for compare */
    int nconfigs;
    frost_define *defs;
    int ndefs;
    frost_select sel;
    cg_options cg;
} compile_args;

static int parse_define(pool *p, compile_args *a, const char *text) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return usage_error("-D expects NAME=VALUE, got '%s'", text);
    char *end;
    errno = 0;
    long long value = strtoll(eq + 1, &end, 0);
    if (errno || *end || end == eq + 1)
        return usage_error("-D value must be an integer: '%s'", text);
    a->defs[a->ndefs].name = pool_strndup(p, text, (size_t)(eq - text));
    a->defs[a->ndefs].value = value;
    a->ndefs++;
    return 0;
}

static int parse_opt_setting(pool *p, frost_opt_setting *out, const char *text) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return usage_error("--opt expects KEY=VALUE, got '%s'", text);
    char *end;
    errno = 0;
    double value = strtod(eq + 1, &end);
    if (strcmp(eq + 1, "true") == 0)
        value = 1, end = (char *)eq + 5;
    else if (strcmp(eq + 1, "false") == 0)
        value = 0, end = (char *)eq + 6;
    if (errno || *end || end == eq + 1)
        return usage_error("--opt value must be a number (or true/false): '%s'", text);
    out->key = pool_strndup(p, text, (size_t)(eq - text));
    out->value = value;
    return 0;
}

static int parse_compile_args(pool *p, int argc, char **argv, compile_args *a) {
    a->defs = pool_alloc(p, sizeof *a->defs * (size_t)argc);
    const char **train = pool_alloc(p, sizeof *train * (size_t)argc);
    const char **freeze = pool_alloc(p, sizeof *freeze * (size_t)argc);
    const char **grad = pool_alloc(p, sizeof *grad * (size_t)argc);
    a->sel.train = train;
    a->sel.freeze = freeze;
    a->sel.grad = grad;
    a->configs = pool_alloc(p, sizeof *a->configs * (size_t)argc);
    frost_opt_setting *settings = pool_alloc(p, sizeof *settings * (size_t)argc);
    a->sel.opt_settings = settings;
    a->cg.opt_level = 3;
    for (int k = 0; k < argc; k++) {
        const char *arg = argv[k];
        /* options taking a value, as "-o X" (and "-DX=1") */
        const char *value = k + 1 < argc ? argv[k + 1] : NULL;
        if (strcmp(arg, "-o") == 0 || strcmp(arg, "--header") == 0 || strcmp(arg, "-D") == 0 ||
            strcmp(arg, "--config") == 0 || strcmp(arg, "--train") == 0 || strcmp(arg, "--freeze") == 0 ||
            strcmp(arg, "--grad") == 0 || strcmp(arg, "--name") == 0 || strcmp(arg, "--mcpu") == 0 ||
            strcmp(arg, "--triple") == 0 || strcmp(arg, "--format") == 0 || strcmp(arg, "--optimizer") == 0 ||
            strcmp(arg, "--opt") == 0) {
            if (!value)
                return usage_error("option %s needs a value", arg);
            k++;
            if (strcmp(arg, "-o") == 0)
                a->object = value;
            else if (strcmp(arg, "--header") == 0)
                a->header = value;
            else if (strcmp(arg, "-D") == 0) {
                if (parse_define(p, a, value))
                    return EXIT_USAGE;
            } else if (strcmp(arg, "--config") == 0)
                a->sel.config = a->configs[a->nconfigs++] = value;
            else if (strcmp(arg, "--format") == 0)
                a->format = value;
            else if (strcmp(arg, "--train") == 0)
                train[a->sel.ntrain++] = value;
            else if (strcmp(arg, "--freeze") == 0)
                freeze[a->sel.nfreeze++] = value;
            else if (strcmp(arg, "--grad") == 0)
                grad[a->sel.ngrad++] = value;
            else if (strcmp(arg, "--name") == 0)
                a->cg.prefix = value;
            else if (strcmp(arg, "--optimizer") == 0)
                a->sel.optimizer = value;
            else if (strcmp(arg, "--opt") == 0) {
                if (parse_opt_setting(p, &settings[a->sel.nopt_settings++], value))
                    return EXIT_USAGE;
            }
            else if (strcmp(arg, "--mcpu") == 0)
                a->cg.cpu = value;
            else
                a->cg.triple = value;
        } else if (strncmp(arg, "-D", 2) == 0) {
            if (parse_define(p, a, arg + 2))
                return EXIT_USAGE;
        } else if (strcmp(arg, "--batchnorm-eval") == 0) {
            a->sel.bn_eval = true;
        } else if (arg[0] == '-' && arg[1] == 'O' && arg[2] >= '0' && arg[2] <= '3' && !arg[3]) {
            a->cg.opt_level = arg[2] - '0';
        } else if (arg[0] == '-' && arg[1]) {
            return usage_error("unknown option '%s'", arg);
        } else if (a->input) {
            return usage_error("more than one input file ('%s')", arg);
        } else {
            a->input = arg;
        }
    }
    if (a->cg.cpu && strcmp(a->cg.cpu, "help") == 0) {
        char *err = NULL;
        bool listed = cg_list_cpus(&a->cg, stdout, &err);
        if (!listed)
            fprintf(stderr, "frost: %s\n", err ? err : "cannot list CPUs");
        free(err);
        return listed ? DONE_EARLY : EXIT_USAGE;
    }
    if (a->cg.cpu || a->cg.triple) {
        char *err = NULL;
        if (!cg_check_target(&a->cg, &err)) {
            int status = usage_error("%s", err ? err : "bad target");
            free(err);
            return status;
        }
    }
    if (!a->input)
        return usage_error("%s", "a model file is needed");
    if (a->cg.prefix) {
        bool ident = (a->cg.prefix[0] < '0' || a->cg.prefix[0] > '9') && a->cg.prefix[0];
        for (const char *c = a->cg.prefix; *c; c++)
            ident &= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!ident)
            return usage_error("--name must be a C identifier, got '%s'", a->cg.prefix);
    }
    return 0;
}

static bool parse_format(const char *name, view_format *fmt, const char *allowed) {
    static const struct {
        const char *name;
        view_format fmt;
    } formats[] = {{"text", FMT_TEXT}, {"json", FMT_JSON}, {"markdown", FMT_MARKDOWN},
                   {"csv", FMT_CSV},   {"dot", FMT_DOT},   {"svg", FMT_SVG}};
    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
        size_t n = strlen(formats[k].name);
        const char *at = strstr(allowed, formats[k].name);
        if (strcmp(name, formats[k].name) == 0 && at && (at[n] == '|' || at[n] == '\0')) {
            *fmt = formats[k].fmt;
            return true;
        }
    }
    usage_error("unknown --format '%s'", name);
    fprintf(stderr, "frost: formats here: %s\n", allowed);
    return false;
}

/* Load, check and plan the model: the part every subcommand shares. */
static ir_module *load_module(pool *p, diag_ctx *d, const char *path, const frost_define *defs, int ndefs,
                              const frost_select *sel, char **src_out) {
    size_t len = 0;
    char *src = read_file(path, &len);
    if (!src) {
        fprintf(stderr, "frost: error: cannot read '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    *src_out = src;
    diag_init(d, path, src, len, stderr);
    return frost_build(p, d, defs, ndefs, sel);
}

static int cmd_compile(int argc, char **argv) {
    pool *p = pool_new();
    compile_args a = {0};
    int status = parse_compile_args(p, argc, argv, &a);
    if (status) {
        pool_free(p);
        return status;
    }
    if (!a.object)
        a.object = default_output(p, a.input, ".o");
    if (!a.header)
        a.header = replace_ext(p, a.object, ".h");
    diag_ctx d;
    char *src = NULL;
    ir_module *m = load_module(p, &d, a.input, a.defs, a.ndefs, &a.sel, &src);
    status = EXIT_BAD_INPUT;
    char *obj_tmp = NULL, *hdr_tmp = NULL;
    if (!m)
        goto done;
    if (!(obj_tmp = make_temp(p, a.object)) || !(hdr_tmp = make_temp(p, a.header)))
        goto done;
    char *err = NULL;
    if (!cg_emit_object(m, &a.cg, obj_tmp, &err)) {
        fprintf(stderr, "frost: error: cannot emit '%s': %s\n", a.object, err ? err : "unknown LLVM error");
        free(err);
        goto done;
    }
    FILE *h = fopen(hdr_tmp, "w");
    if (!h) {
        fprintf(stderr, "frost: error: cannot write '%s': %s\n", a.header, strerror(errno));
        goto done;
    }
    cg_emit_header(m, &a.cg, h);
    if (ferror(h) | fclose(h)) {
        fprintf(stderr, "frost: error: cannot write '%s': %s\n", a.header, strerror(errno));
        goto done;
    }
    sigset_t old;
    cli_block(&old); /* the object and its header appear together, or neither does */
    if (!commit_temp(obj_tmp, a.object)) {
        fprintf(stderr, "frost: error: cannot write '%s': %s\n", a.object, strerror(errno));
    } else if (!commit_temp(hdr_tmp, a.header)) {
        fprintf(stderr, "frost: error: cannot write '%s': %s\n", a.header, strerror(errno));
        obj_tmp = NULL;
        unlink(a.object);
    } else {
        obj_tmp = hdr_tmp = NULL;
        status = 0;
    }
    cli_unblock(&old);
done:
    drop_temp(obj_tmp);
    drop_temp(hdr_tmp);
    free(src);
    pool_free(p);
    return status;
}

/* Write `text` to path through a temporary, or to stdout when path is NULL;
 * DOT text laid out and rendered to SVG first when `render`. */
static bool write_output(pool *p, const char *path, const char *text, size_t len, bool render) {
    char *tmp = NULL;
    FILE *out = stdout;
    if (path) {
        if (!(tmp = make_temp(p, path)))
            return false;
        if (!(out = fopen(tmp, "w"))) {
            fprintf(stderr, "frost: error: cannot write '%s': %s\n", path, strerror(errno));
            drop_temp(tmp);
            return false;
        }
    }
    bool ok = true;
    if (render) {
        char *err = NULL;
        ok = view_svg(text, len, out, &err);
        if (!ok) {
            fprintf(stderr, "frost: error: %s\n", err);
            free(err);
        }
    } else {
        ok = fwrite(text, 1, len, out) == len;
    }
    if (path) {
        ok &= !ferror(out) & (fclose(out) == 0);
        if (ok && !commit_temp(tmp, path))
            ok = false;
        if (!ok) {
            fprintf(stderr, "frost: error: cannot write '%s': %s\n", path, strerror(errno));
            drop_temp(tmp);
        }
    } else {
        ok &= fflush(stdout) == 0;
    }
    return ok;
}

/* ---------------------------------------------------------------- the views' own options
 *
 * Taken out of argv before the options all commands share are parsed, the
 * rest left in order; an option of another view is a usage error. (A value
 * that is spelt like one of these, `-o --only`, is taken for the option.) */
static const struct {
    const char *name, *cmd; /* the option, the command that takes it */
    bool value;
} view_opts[] = {
    {"--steps", "plan", false}, {"--from", "dot", true},     {"--to", "dot", true},
    {"--only", "dot", true},    {"--expand", "dot", false}, {"--collapse", "dot", false},
};

static int take_view_args(pool *p, const char *cmd, int *argc, char **argv, view_options *o) {
    const char **only = pool_alloc(p, sizeof *only * (size_t)(*argc + 1));
    o->only = only;
    int kept = 0;
    for (int k = 0; k < *argc; k++) {
        size_t i = 0, n = sizeof view_opts / sizeof *view_opts;
        while (i < n && strcmp(argv[k], view_opts[i].name) != 0)
            i++;
        if (i == n) {
            argv[kept++] = argv[k];
            continue;
        }
        const char *name = view_opts[i].name, *value = NULL;
        if (strcmp(view_opts[i].cmd, cmd) != 0)
            return usage_error("%s", pool_printf(p, "%s is an option of frost %s", name, view_opts[i].cmd));
        if (view_opts[i].value && !(value = k + 1 < *argc ? argv[++k] : NULL))
            return usage_error("option %s needs a value", name);
        if (strcmp(name, "--steps") == 0)
            o->steps = true;
        else if (strcmp(name, "--from") == 0)
            o->from = value;
        else if (strcmp(name, "--to") == 0)
            o->to = value;
        else if (strcmp(name, "--only") == 0)
            only[o->nonly++] = value;
        else
            o->collapse = strcmp(name, "--expand") == 0 ? COLLAPSE_NEVER : COLLAPSE_ALWAYS;
    }
    *argc = kept;
    return 0;
}

/* plan, compare and dot: SVG when -o names a .svg file and --format does not
 * say otherwise. */
static view_format format_of(const compile_args *a, view_format fmt) {
    const char *ext = a->object ? strrchr(a->object, '.') : NULL;
    return !a->format && ext && strcmp(ext, ".svg") == 0 ? FMT_SVG : fmt;
}

/* frost plan | frost dot: one configuration, one view. */
static int cmd_view(int argc, char **argv, bool dot) {
    pool *p = pool_new();
    compile_args a = {0};
    view_options vo = {0};
    int status = take_view_args(p, dot ? "dot" : "plan", &argc, argv, &vo);
    if (!status)
        status = parse_compile_args(p, argc, argv, &a);
    if (status) {
        pool_free(p);
        return status;
    }
    view_format fmt = format_of(&a, dot ? FMT_DOT : FMT_TEXT);
    if (a.format && !parse_format(a.format, &fmt, dot ? "dot|svg" : "text|json|svg")) {
        pool_free(p);
        return EXIT_USAGE;
    }
    diag_ctx d;
    char *src = NULL;
    status = EXIT_BAD_INPUT;
    ir_module *m = load_module(p, &d, a.input, a.defs, a.ndefs, &a.sel, &src);
    char *text = NULL, *err = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    bool ok = m != NULL;
    if (m && dot) {
        /* the same model fully trainable, with batch norm in the same mode, to
         * show what freezing saved */
        pool *fp = pool_new();
        frost_select all = {.config = "all", .bn_eval = m->bn_eval};
        diag_ctx quiet;
        diag_init(&quiet, a.input, src, strlen(src), mem);
        ir_module *full = frost_build(fp, &quiet, a.defs, a.ndefs, &all);
        ok = view_dot(m, full, &vo, mem, &err);
        pool_free(fp);
    } else if (m) {
        view_plan(m, fmt, &vo, mem);
    }
    fclose(mem);
    if (err)
        fprintf(stderr, "frost: error: %s\n", err);
    if (ok && write_output(p, a.object, text, len, dot && fmt == FMT_SVG))
        status = 0;
    free(err);
    free(text);
    free(src);
    pool_free(p);
    return status;
}

/* A compare row's name: its configuration and what the command line changed
 * in it ("head+--train fc1.*"), so it is not taken for the file's own. */
static const char *row_name(pool *p, const char *config, const frost_select *sel) {
    const char *name = config;
    for (int k = 0; k < sel->ntrain; k++)
        name = pool_printf(p, "%s+--train %s", name, sel->train[k]);
    for (int k = 0; k < sel->nfreeze; k++)
        name = pool_printf(p, "%s+--freeze %s", name, sel->freeze[k]);
    for (int k = 0; k < sel->ngrad; k++)
        name = pool_printf(p, "%s+--grad %s", name, sel->grad[k]);
    if (sel->bn_eval)
        name = pool_printf(p, "%s+--batchnorm-eval", name);
    return name;
}

static int cmd_compare(int argc, char **argv) {
    pool *p = pool_new();
    compile_args a = {0};
    view_options vo = {0};
    int status = take_view_args(p, "compare", &argc, argv, &vo);
    if (!status)
        status = parse_compile_args(p, argc, argv, &a);
    if (status) {
        pool_free(p);
        return status;
    }
    view_format fmt = format_of(&a, FMT_TEXT);
    if (a.format && !parse_format(a.format, &fmt, "text|markdown|csv|json|svg")) {
        pool_free(p);
        return EXIT_USAGE;
    }
    status = EXIT_BAD_INPUT;
    size_t len = 0;
    char *src = read_file(a.input, &len);
    if (!src) {
        fprintf(stderr, "frost: error: cannot read '%s': %s\n", a.input, strerror(errno));
        pool_free(p);
        return status;
    }
    /* The file is read and elaborated once; each configuration runs the
     * passes on a fork of that graph in a pool of its own. */
    diag_ctx d;
    diag_init(&d, a.input, src, len, stderr);
    const ir_graph *g = frontend_load(p, &d, a.defs, a.ndefs);
    if (g) {
        const char **names = a.configs;
        int nnames = a.nconfigs;
        if (!nnames)
            names = config_names(g, &nnames);
        compare_row *rows = pool_alloc(p, sizeof *rows * (size_t)nnames);
        bool ok = true;
        for (int k = 0; k < nnames && ok; k++) {
            pool *cp = pool_new();
            frost_select sel = a.sel;
            sel.config = names[k];
            diag_init(&d, a.input, src, len, stderr);
            ir_module *m = frost_build_graph(ir_graph_fork(cp, g), &d, &sel);
            if (m)
                compare_row_of(m, row_name(p, names[k], &a.sel), &rows[k]);
            ok = m != NULL;
            pool_free(cp);
        }
        if (ok) {
            char *text = NULL;
            size_t text_len = 0;
            FILE *mem = open_memstream(&text, &text_len);
            view_compare(g->model, rows, nnames, fmt, mem);
            fclose(mem);
            if (write_output(p, a.object, text, text_len, false))
                status = 0;
            free(text);
        }
    }
    free(src);
    pool_free(p);
    return status;
}

static int run(int argc, char **argv) {
    if (argc < 2)
        return usage_error("%s", "no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("frost %s\n", FROST_VERSION);
        return 0;
    }
    if (strcmp(cmd, "compile") == 0)
        return cmd_compile(argc - 2, argv + 2);
    if (strcmp(cmd, "plan") == 0)
        return cmd_view(argc - 2, argv + 2, false);
    if (strcmp(cmd, "dot") == 0)
        return cmd_view(argc - 2, argv + 2, true);
    if (strcmp(cmd, "compare") == 0)
        return cmd_compare(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv) {
    cli_init();
    int status = run(argc, argv);
    return status == DONE_EARLY ? EXIT_SUCCESS : status;
}
