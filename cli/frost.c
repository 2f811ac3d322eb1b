/* frost: the command-line driver.
 *
 *   frost compile FILE [options]   model file -> NAME.o + NAME.h
 *   frost plan | compare | dot | configs FILE [options]   the views
 *
 * cli_options[] below says which command takes which option; --help and
 * the parser both read it.
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

/* ---------------------------------------------------------------- commands and options
 *
 * Which command takes which option, and the help each prints: the one table
 * that `frost --help`, `frost COMMAND --help` and the check that an option
 * applies to its command all read. An option whose help differs between
 * commands has a row per group of them. Values never start with '-': a
 * missing value is not silently taken from the next option (`--config -o
 * out.o`); no name, pattern or KEY=VALUE starts with one, and a file that
 * does is ./-name. */
enum { C_COMPILE = 1, C_PLAN = 2, C_COMPARE = 4, C_DOT = 8, C_CONFIGS = 16, C_ALL = 31 };
enum { C_VIEWS = C_PLAN | C_COMPARE | C_DOT, C_SELECT = C_COMPILE | C_VIEWS /* what trains */ };

struct cli_command;
static int cmd_compile(const struct cli_command *cmd, int argc, char **argv);
static int cmd_view(const struct cli_command *cmd, int argc, char **argv); /* plan and dot */
static int cmd_compare(const struct cli_command *cmd, int argc, char **argv);
static int cmd_configs(const struct cli_command *cmd, int argc, char **argv);

static const struct cli_command {
    const char *name;
    unsigned bit;
    int (*run)(const struct cli_command *cmd, int argc, char **argv);
    const char *summary; /* one line, for the overview */
    const char *about;   /* the command's own help, before its options */
} cli_commands[] = {
    {"compile", C_COMPILE, cmd_compile, "model -> OUT.o + OUT.h",
     "Compile a model file into an object file and a C header with forward, backward,\n"
     "inference, init and optimizer functions and a static memory plan.\n"},
    {"plan", C_PLAN, cmd_view, "every buffer: role, bytes, live steps, arena offset",
     "Show the memory plan of one configuration: every buffer of the train and infer\n"
     "programs with its role, bytes, live steps and arena offset, then the totals.\n"},
    {"compare", C_COMPARE, cmd_compare, "memory per freeze configuration",
     "Compare the memory of freeze configurations, one row each.\n"},
    {"dot", C_DOT, cmd_view, "liveness graph (Graphviz DOT, SVG or PNG)",
     "Draw the liveness graph of the train program: steps, the tensors between them,\n"
     "what is kept for backward.\n"},
    {"configs", C_CONFIGS, cmd_configs, "the file's freeze configurations: what each trains",
     "List the freeze configurations of a model file, the built-in all and none\n"
     "included, the default marked: what each trains (its patterns, and how many\n"
     "parameters they select), which inputs get gradients, the batch-norm mode.\n"},
};

static const struct cli_option {
    const char *name; /* as typed; "-O" stands for -O0 .. -O3 */
    const char *arg;  /* its value in the help; NULL: it takes none */
    unsigned cmds;    /* the commands that take it */
    const char *help; /* '\n' begins a continuation line */
} cli_options[] = {
    {"-o", "OUT.o", C_COMPILE, "object file (default: FILE's base name with .o, in the current directory)"},
    {"-o", "OUT", C_VIEWS | C_CONFIGS, "write to OUT (default: standard output)"},
    {"--header", "OUT.h", C_COMPILE, "header (default: OUT.o with .h)"},
    {"-D", "NAME=VALUE", C_ALL, "override `const NAME` of the model file (integer); also -DNAME=VALUE"},
    {"--config", "NAME", C_COMPILE | C_PLAN | C_DOT,
     "freeze configuration (default: the file's `default`, else all trainable);\n"
     "`all` and `none` always exist"},
    {"--config", "NAME", C_COMPARE,
     "a configuration to compare; repeatable (default: every configuration of\n"
     "the file, plus all and none)"},
    {"--train", "PATTERN", C_SELECT, "also train the params matching PATTERN (glob: * ? [..]); repeatable"},
    {"--freeze", "PATTERN", C_SELECT, "freeze the params matching PATTERN; repeatable, applied after --train"},
    {"--grad", "INPUT", C_SELECT, "also compute d loss / d INPUT; repeatable"},
    {"--batchnorm-eval", NULL, C_SELECT, "batch norm uses its running statistics in training too"},
    {"--optimizer", "NAME", C_COMPILE | C_PLAN | C_COMPARE,
     "optimizer compiled into P_update / P_train_step, whose state plan and\n"
     "compare count: sgd or adamw (default: the model's `optimizer` statement,\n"
     "else sgd)"},
    {"--opt", "KEY=VALUE", C_COMPILE | C_PLAN | C_COMPARE,
     "its default hyper-parameters (lr, momentum, dampening, nesterov,\n"
     "weight_decay; adamw: lr, beta1, beta2, eps, weight_decay); repeatable"},
    {"--name", "PREFIX", C_COMPILE, "prefix of the generated symbols and macros (default: the model name)"},
    {"-O", NULL, C_COMPILE, "optimisation level of the generated code (default -O3)"},
    {"--mcpu", "CPU", C_COMPILE, "target CPU (default: this machine's; --mcpu help lists them)"},
    {"--triple", "TRIPLE", C_COMPILE, "target triple (default: this machine's)"},
    {"--gemm", "NAME", C_COMPILE,
     "whose matrix products the kernels call: frost (its own, for the target\n"
     "CPU; the default) or openblas"},
    {"--infer-only", NULL, C_COMPILE,
     "P_init and P_infer only (no train program, no gradients, no optimizer);\n"
     "the header's arena is the inference arena"},
    {"--checked", NULL, C_COMPILE,
     "for development: guard bytes around every buffer and at the end of every\n"
     "block, checked after each step, and every step's f32 outputs checked for\n"
     "NaN/Inf (P_ERR_GUARD, P_ERR_NONFINITE, P_last_error)"},
    {"-d", "LETTERS", C_COMPILE,
     "dump the IR to stderr after passes: g graph, l lowered, p planned,\n"
     "w widened (docs/internals.md)"},
    {"--format", "FMT", C_PLAN, "text|json|svg (default: svg when -o names a .svg file, else text)"},
    {"--format", "FMT", C_COMPARE, "text|markdown|csv|json|svg (default: svg when -o names a .svg file, else text)"},
    {"--format", "FMT", C_CONFIGS, "text|json (default: text)"},
    {"--format", "FMT", C_DOT,
     "dot|svg|png (default: svg or png when -o names a .svg or .png file,\n"
     "else dot)"},
    {"--steps", NULL, C_PLAN, "also list every step: kernel, node, live bytes, reads, writes"},
    {"--only", "PATTERN", C_DOT,
     "only the nodes matching PATTERN or lying under a match (layer2.* or layer2);\n"
     "repeatable"},
    {"--from", "NAME", C_DOT, "start at the first node named NAME or lying under it (NAME.*)"},
    {"--to", "NAME", C_DOT, "end at the last node named NAME or lying under it"},
    {"--collapse", NULL, C_DOT,
     "one node per def call (and phase) (default: above " STRINGIFY(VIEW_COLLAPSE_STEPS) " steps)"},
    {"--expand", NULL, C_DOT, "one node per step"},
    {"-h", NULL, C_ALL, "this help"},
};
enum { NOPTIONS = sizeof cli_options / sizeof *cli_options, NCOMMANDS = sizeof cli_commands / sizeof *cli_commands };

static bool is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

/* The row of arg for a command (NULL: none), and in *value a value written
 * into arg itself (-DN=4); *cmds: the commands that take the option at all
 * (0: no such option). */
static const struct cli_option *find_option(const char *arg, unsigned cmd, unsigned *cmds, const char **value) {
    const char *name = arg;
    *value = NULL;
    if (arg[0] == '-' && arg[1] == 'O' && arg[2] >= '0' && arg[2] <= '3' && !arg[3])
        name = "-O";
    else if (strncmp(arg, "-D", 2) == 0 && arg[2])
        name = "-D", *value = arg + 2;
    else if (is_help(arg))
        name = "-h";
    const struct cli_option *row = NULL;
    *cmds = 0;
    for (int k = 0; k < NOPTIONS; k++)
        if (strcmp(cli_options[k].name, name) == 0) {
            *cmds |= cli_options[k].cmds;
            if (!row && (cli_options[k].cmds & cmd))
                row = &cli_options[k];
        }
    return row;
}

/* "plan, compare and dot" */
static const char *command_list(pool *p, unsigned cmds) {
    const char *list = NULL;
    int n = 0;
    for (int k = 0; k < NCOMMANDS; k++)
        n += (cmds & cli_commands[k].bit) != 0;
    for (int k = 0, i = 0; k < NCOMMANDS; k++) {
        if (!(cmds & cli_commands[k].bit))
            continue;
        const char *name = cli_commands[k].name;
        list = !i ? name : pool_printf(p, "%s%s%s", list, i + 1 == n ? " and " : ", ", name);
        i++;
    }
    return list;
}

/* One option's help: "  --config NAME         freeze ..." with its
 * continuation lines under the first. */
static void print_option(FILE *out, const struct cli_option *o) {
    char head[64];
    if (strcmp(o->name, "-O") == 0)
        snprintf(head, sizeof head, "-O0 -O1 -O2 -O3");
    else if (strcmp(o->name, "-h") == 0)
        snprintf(head, sizeof head, "-h, --help");
    else
        snprintf(head, sizeof head, "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    fprintf(out, "  %-20s  ", head);
    for (const char *c = o->help; *c; c++) {
        fputc(*c, out);
        if (*c == '\n')
            fprintf(out, "%24s", "");
    }
    fputc('\n', out);
}

static const char value_rule[] = "An option's value never starts with '-' (write ./-name for a file named so).\n";

/* The commands, then every option once, under the commands that take it. */
static void print_overview(FILE *out) {
    pool *p = pool_new();
    for (int k = 0; k < NCOMMANDS; k++) {
        const char *use = pool_printf(p, "frost %s FILE [options]", cli_commands[k].name);
        fprintf(out, "%s %-34s  %s\n", k ? "      " : "usage:", use, cli_commands[k].summary);
    }
    fprintf(out, "       %-34s  %s\n", "frost COMMAND --help", "that command's help: what it does, its options");
    fprintf(out, "       frost --help | --version\n"
                 "\n"
                 "Compile a model file into an object file and a C header with forward,\n"
                 "backward, inference and init functions and a static memory plan, or show\n"
                 "that plan.\n");
    for (int k = 0; k < NOPTIONS; k++) {
        unsigned c = cli_options[k].cmds;
        bool seen = false;
        for (int j = 0; j < k; j++)
            seen |= cli_options[j].cmds == c;
        if (seen)
            continue;
        fprintf(out, "\noptions of %s:\n", c == C_ALL ? "every command" : command_list(p, c));
        for (int j = k; j < NOPTIONS; j++)
            if (cli_options[j].cmds == c)
                print_option(out, &cli_options[j]);
    }
    fprintf(out, "\n%s", value_rule);
    pool_free(p);
}

static void print_command_help(FILE *out, const struct cli_command *c) {
    fprintf(out, "usage: frost %s FILE [options]\n\n%s\noptions:\n", c->name, c->about);
    for (int k = 0; k < NOPTIONS; k++)
        if (cli_options[k].cmds & c->bit)
            print_option(out, &cli_options[k]);
    fprintf(out, "\n%s", value_rule);
}

static char cli_try[32] = "frost --help"; /* the help a usage error points to: the command's */

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "frost: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s'.\n", cli_try);
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

/* The arguments after the command. DONE_EARLY after -h / --help printed the
 * command's help, or --mcpu help the CPUs. */
static int parse_compile_args(pool *p, const struct cli_command *cmd, int argc, char **argv, compile_args *a,
                              view_options *vo) {
    for (int k = 0; k < argc; k++)
        if (is_help(argv[k])) {
            print_command_help(stdout, cmd);
            return DONE_EARLY;
        }
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
    static view_options no_view;
    if (!vo)
        vo = &no_view;
    const char **only = pool_alloc(p, sizeof *only * (size_t)(argc + 1));
    vo->only = only;
    for (int k = 0; k < argc; k++) {
        const char *arg = argv[k], *value;
        unsigned cmds;
        const struct cli_option *opt = find_option(arg, cmd->bit, &cmds, &value);
        if (!opt && cmds)
            return usage_error("%s", pool_printf(p, "%s is an option of frost %s, not frost %s", arg,
                                                 command_list(p, cmds), cmd->name));
        if (!opt && arg[0] == '-' && arg[1])
            return usage_error("unknown option '%s'", arg);
        if (!opt) {
            if (a->input)
                return usage_error("more than one input file ('%s')", arg);
            a->input = arg;
            continue;
        }
        if (opt->arg && !value) {
            if (k + 1 == argc)
                return usage_error("option %s needs a value", arg);
            value = argv[++k];
            if (value[0] == '-')
                return usage_error("%s", pool_printf(p,
                                                     "option %s needs a value, got '%s' (values never start "
                                                     "with '-')",
                                                     arg, value));
        }
        const char *name = opt->name;
        if (strcmp(name, "-o") == 0)
            a->object = value;
        else if (strcmp(name, "--header") == 0)
            a->header = value;
        else if (strcmp(name, "-D") == 0) {
            if (parse_define(p, a, value))
                return EXIT_USAGE;
        } else if (strcmp(name, "--config") == 0)
            a->sel.config = a->configs[a->nconfigs++] = value;
        else if (strcmp(name, "--format") == 0)
            a->format = value;
        else if (strcmp(name, "--train") == 0)
            train[a->sel.ntrain++] = value;
        else if (strcmp(name, "--freeze") == 0)
            freeze[a->sel.nfreeze++] = value;
        else if (strcmp(name, "--grad") == 0)
            grad[a->sel.ngrad++] = value;
        else if (strcmp(name, "--name") == 0)
            a->cg.prefix = value;
        else if (strcmp(name, "--optimizer") == 0)
            a->sel.optimizer = value;
        else if (strcmp(name, "--opt") == 0) {
            if (parse_opt_setting(p, &settings[a->sel.nopt_settings++], value))
                return EXIT_USAGE;
        } else if (strcmp(name, "--mcpu") == 0)
            a->cg.cpu = value;
        else if (strcmp(name, "--triple") == 0)
            a->cg.triple = value;
        else if (strcmp(name, "--gemm") == 0) {
            if (strcmp(value, "frost") && strcmp(value, "openblas"))
                return usage_error("%s", pool_printf(p, "unknown --gemm '%s' (frost or openblas)", value));
            a->cg.gemm = strcmp(value, "openblas") ? CG_GEMM_FROST : CG_GEMM_OPENBLAS;
        } else if (strcmp(name, "--batchnorm-eval") == 0)
            a->sel.bn_eval = true;
        else if (strcmp(name, "--infer-only") == 0)
            a->sel.infer_only = true;
        else if (strcmp(name, "--checked") == 0)
            a->sel.checked = true;
        else if (strcmp(name, "-d") == 0)
            a->sel.dump = value;
        else if (strcmp(name, "-O") == 0)
            a->cg.opt_level = arg[2] - '0';
        else if (strcmp(name, "--steps") == 0)
            vo->steps = true;
        else if (strcmp(name, "--from") == 0)
            vo->from = value;
        else if (strcmp(name, "--to") == 0)
            vo->to = value;
        else if (strcmp(name, "--only") == 0)
            only[vo->nonly++] = value;
        else if (strcmp(name, "--collapse") == 0 || strcmp(name, "--expand") == 0)
            vo->collapse = strcmp(name, "--expand") == 0 ? COLLAPSE_NEVER : COLLAPSE_ALWAYS;
        else
            IR_ASSERT(!"an option of the table without a case here");
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
    for (const char *c = a->sel.dump ? a->sel.dump : ""; *c; c++)
        if (!strchr(FROST_DUMP_LETTERS, *c))
            return usage_error("%s", pool_printf(p, "unknown -d letter '%c' (letters: %s)", *c, FROST_DUMP_LETTERS));
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
                   {"csv", FMT_CSV},   {"dot", FMT_DOT},   {"svg", FMT_SVG},
                   {"png", FMT_PNG}};
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

/* Read and elaborate the model file: the part every subcommand shares. The
 * source (*src_out, the caller frees it) must outlive the diagnostics of d,
 * which quote it; NULL after reporting. */
static ir_graph *load_graph(pool *p, diag_ctx *d, const compile_args *a, char **src_out) {
    size_t len = 0;
    char *src = read_file(a->input, &len);
    if (!src) {
        fprintf(stderr, "frost: error: cannot read '%s': %s\n", a->input, strerror(errno));
        return NULL;
    }
    *src_out = src;
    diag_init(d, a->input, src, len, stderr);
    return frontend_load(p, d, a->defs, a->ndefs);
}

/* ... and check and plan it under a->sel. */
static ir_module *load_module(pool *p, diag_ctx *d, const compile_args *a, char **src_out) {
    ir_graph *g = load_graph(p, d, a, src_out);
    return g ? frost_build_graph(g, d, &a->sel) : NULL;
}

static int cmd_compile(const struct cli_command *cmd, int argc, char **argv) {
    pool *p = pool_new();
    compile_args a = {0};
    int status = parse_compile_args(p, cmd, argc, argv, &a, NULL);
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
    ir_module *m = load_module(p, &d, &a, &src);
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
 * DOT text laid out and rendered by Graphviz first when `render` names a
 * format ("svg", "png"). */
static bool write_output(pool *p, const char *path, const char *text, size_t len, const char *render) {
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
        ok = view_render(text, len, render, out, &err);
        if (!ok) {
            fprintf(stderr, "frost: error: %s\n", err ? err : "out of memory");
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

/* The views: SVG when -o names a .svg file and --format does not say
 * otherwise, PNG for a .png file; any other name, the command's default.
 * An image the command cannot draw is a usage error (false after it), not
 * text in a file named .png: plan and compare draw SVG only, configs none. */
static bool format_of(pool *p, const compile_args *a, const struct cli_command *cmd, view_format *fmt,
                      const char *allowed) {
    const char *ext = a->object ? strrchr(a->object, '.') : NULL;
    if (a->format)
        return parse_format(a->format, fmt, allowed);
    bool svg = ext && strcmp(ext, ".svg") == 0, png = ext && strcmp(ext, ".png") == 0;
    if ((svg && strstr(allowed, "svg")) || (png && strstr(allowed, "png"))) {
        *fmt = svg ? FMT_SVG : FMT_PNG;
    } else if (png && strstr(allowed, "svg")) {
        usage_error("%s", pool_printf(p, "%s draws SVG, not PNG: write -o %.*s.svg (rsvg-convert makes a PNG of it)",
                                      cmd->name, (int)(ext - a->object), a->object));
        return false;
    } else if (svg || png) {
        usage_error("%s", pool_printf(p, "%s writes %s, not an image ('%s')", cmd->name, allowed, a->object));
        return false;
    }
    return true;
}

/* The arguments of a view (plan, compare, dot, configs) and its output
 * format (*fmt holds the command's default): 0, or the exit status of a
 * usage error. */
static int view_args(pool *p, const struct cli_command *cmd, int argc, char **argv, compile_args *a, view_options *vo,
                     view_format *fmt, const char *allowed) {
    int status = parse_compile_args(p, cmd, argc, argv, a, vo);
    if (!status && !format_of(p, a, cmd, fmt, allowed))
        status = EXIT_USAGE;
    return status;
}

/* frost plan | frost dot: one configuration, one view. */
static int cmd_view(const struct cli_command *cmd, int argc, char **argv) {
    pool *p = pool_new();
    compile_args a = {0};
    view_options vo = {0};
    bool dot = cmd->bit == C_DOT;
    view_format fmt = dot ? FMT_DOT : FMT_TEXT;
    int status = view_args(p, cmd, argc, argv, &a, &vo, &fmt, dot ? "dot|svg|png" : "text|json|svg");
    if (status) {
        pool_free(p);
        return status;
    }
    diag_ctx d;
    char *src = NULL;
    status = EXIT_BAD_INPUT;
    ir_module *m = load_module(p, &d, &a, &src);
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
    const char *render = !dot ? NULL : fmt == FMT_SVG ? "svg" : fmt == FMT_PNG ? "png" : NULL;
    if (ok && write_output(p, a.object, text, len, render))
        status = 0;
    free(err);
    free(text);
    free(src);
    pool_free(p);
    return status;
}

static int cmd_compare(const struct cli_command *cmd, int argc, char **argv) {
    pool *p = pool_new();
    compile_args a = {0};
    view_format fmt = FMT_TEXT;
    int status = view_args(p, cmd, argc, argv, &a, NULL, &fmt, "text|markdown|csv|json|svg");
    if (status) {
        pool_free(p);
        return status;
    }
    status = EXIT_BAD_INPUT;
    /* The file is read and elaborated once; each configuration runs the
     * passes on a fork of that graph in a pool of its own. */
    char *src = NULL;
    diag_ctx d;
    const ir_graph *g = load_graph(p, &d, &a, &src);
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
            diag_init(&d, a.input, src, d.src_len, stderr); /* a fresh count per configuration */
            ir_module *m = frost_build_graph(ir_graph_fork(cp, g), &d, &sel);
            if (m)
                compare_row_of(m, pool_strdup(p, view_config_name(m)), &rows[k]);
            ok = m != NULL;
            pool_free(cp);
        }
        if (ok) {
            char *text = NULL;
            size_t text_len = 0;
            FILE *mem = open_memstream(&text, &text_len);
            view_compare(g->model, rows, nnames, fmt, mem);
            fclose(mem);
            if (write_output(p, a.object, text, text_len, NULL))
                status = 0;
            free(text);
        }
    }
    free(src);
    pool_free(p);
    return status;
}

/* frost configs: every configuration of the file, after pass_config alone:
 * nothing is lowered or planned. */
static int cmd_configs(const struct cli_command *cmd, int argc, char **argv) {
    pool *p = pool_new();
    compile_args a = {0};
    view_format fmt = FMT_TEXT;
    int status = view_args(p, cmd, argc, argv, &a, NULL, &fmt, "text|json");
    if (status) {
        pool_free(p);
        return status;
    }
    status = EXIT_BAD_INPUT;
    char *src = NULL;
    diag_ctx d;
    const ir_graph *g = load_graph(p, &d, &a, &src);
    if (g) {
        int n = 0, dflt = 0;
        const char **names = config_names(g, &n);
        const char *dflt_name = g->default_config >= 0 ? g->configs[g->default_config].name
                                : g->default_builtin   ? g->default_builtin
                                                       : "all"; /* without a default, everything trains */
        const ir_module **mods = pool_alloc(p, sizeof *mods * (size_t)n);
        bool ok = true;
        for (int k = 0; k < n && ok; k++) {
            ir_module *m = pool_alloc(p, sizeof *m);
            m->graph = ir_graph_fork(p, g);
            frost_select sel = {.config = names[k]};
            ok = pass_config(m, &sel, &d);
            mods[k] = m;
            if (strcmp(names[k], dflt_name) == 0)
                dflt = k;
        }
        if (ok) {
            char *text = NULL;
            size_t text_len = 0;
            FILE *mem = open_memstream(&text, &text_len);
            view_configs(mods, names, n, dflt, fmt, mem);
            fclose(mem);
            if (write_output(p, a.object, text, text_len, NULL))
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
    const char *name = argv[1];
    if (is_help(name) || strcmp(name, "help") == 0) {
        /* frost help COMMAND: that command's help */
        for (int k = 0; argc > 2 && k < NCOMMANDS; k++)
            if (strcmp(argv[2], cli_commands[k].name) == 0) {
                print_command_help(stdout, &cli_commands[k]);
                return 0;
            }
        print_overview(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("frost %s\n", FROST_VERSION);
        return 0;
    }
    for (int k = 0; k < NCOMMANDS; k++)
        if (strcmp(name, cli_commands[k].name) == 0) {
            snprintf(cli_try, sizeof cli_try, "frost %s --help", name);
            return cli_commands[k].run(&cli_commands[k], argc - 2, argv + 2);
        }
    return usage_error("unknown command '%s'", name);
}

int main(int argc, char **argv) {
    cli_init();
    int status = run(argc, argv);
    return status == DONE_EARLY ? EXIT_SUCCESS : status;
}
