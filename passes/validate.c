/* validate.c: an independent check of a planned program.
 *
 * It trusts neither liveness.c nor plan.c: intervals are recomputed from the
 * steps and the alias groups. Checks, in order:
 *   (3) every OPND_BUF operand names a buffer (done first: the rest index by it);
 *   (4) no backward step (index >= nfwd) names a SPACE_INPUT or SPACE_OUTPUT
 *       buffer: the caller's pointers exist only during forward;
 *   (1) every referenced arena buffer (and the state word, live throughout
 *       at offset 0) has an aligned offset >= 0, fits in arena_bytes, and
 *       shares its alias root's offset;
 *   (2) no two distinct storages (alias roots) that are live at a common step
 *       have overlapping byte ranges, with one exception: an in-place takeover.
 *       Storage T (the group of a buffer whose inplace_of names a buffer of
 *       group D) may occupy exactly D's bytes when D's last use is T's first,
 *       at step t, and step t only reads D and only writes T: same offset, same
 *       extent (> 0), and each D handed over at most once. Such a pair shares
 *       its bytes at step t only; nothing else is exempt, and nothing here
 *       trusts plan.c's decision to merge them.
 * (2) is a sweep over steps with the live storages kept sorted by offset:
 * while the live set is overlap-free, a new range can only collide with its
 * neighbours in that order, so each insertion costs a binary search. A donor
 * is retired just before its taker is admitted at step t: since both occupy
 * the same bytes, everything else live at t is checked against those bytes
 * through the taker.
 * Messages go to `out`, at most VAL_MAX_REPORTS of them.
 */
#include "ir.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define VAL_MAX_REPORTS 10

typedef struct {
    const ir_program *prog;
    FILE *out;
    int reports;
    bool ok;
    /* per storage root: the donor root named by a member's inplace_of (-1 if
     * none), and why that takeover was refused (NULL: accepted) */
    int *donor;
    const char **refused;
} val_ctx;

static void fail(val_ctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(val_ctx *v, const char *fmt, ...) {
    v->ok = false;
    if (v->reports++ >= VAL_MAX_REPORTS || !v->out)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("validate: ", v->out);
    vfprintf(v->out, fmt, ap);
    fputc('\n', v->out);
    va_end(ap);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    IR_ASSERT(p);
    return p;
}

static const char *buf_name(const ir_program *prog, int b) {
    const char *s = prog->bufs[b].name;
    return s ? s : "?";
}

/* Alias roots; a broken chain (out of range or cyclic) is reported and the
 * buffer treated as its own root. */
static int *alias_roots(val_ctx *v) {
    const ir_program *prog = v->prog;
    int n = prog->nbufs;
    int *root = xmalloc(sizeof(int) * (size_t)(n + 1));
    for (int b = 0; b < n; b++) {
        int r = b, hops = 0;
        while (prog->bufs[r].alias_of >= 0 && hops <= n) {
            int a = prog->bufs[r].alias_of;
            if (a >= n) {
                fail(v, "buffer %d '%s' aliases nonexistent buffer %d", r, buf_name(prog, r), a);
                break;
            }
            r = a;
            hops++;
        }
        if (hops > n) {
            fail(v, "buffer %d '%s' is on a cycle of aliases", b, buf_name(prog, b));
            r = b;
        }
        root[b] = r;
    }
    return root;
}

/* Storage of one live alias root: a byte range over a step interval. */
typedef struct {
    int64_t lo, hi; /* bytes [lo, hi) */
    int first, last;
    int buf;
    int sweep_last; /* last step in the sweep: last, or last - 1 for a donor handed over */
} val_store;

/* Index of the first live entry with lo > x (entries sorted by lo). */
static int upper(const val_store *const *live, int n, int64_t x) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (live[mid]->lo <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void report_overlap(val_ctx *v, const val_store *a, const val_store *b) {
    const ir_program *prog = v->prog;
    const char *why = v->donor[b->buf] == a->buf   ? v->refused[b->buf]
                      : v->donor[a->buf] == b->buf ? v->refused[a->buf]
                                                   : NULL;
    fail(v,
         "arena overlap: '%s' (buffer %d, steps %d..%d, bytes [%" PRId64 ", %" PRId64 ")) and '%s' (buffer %d, "
         "steps %d..%d, bytes [%" PRId64 ", %" PRId64 "))%s%s",
         buf_name(prog, a->buf), a->buf, a->first, a->last, a->lo, a->hi, buf_name(prog, b->buf), b->buf, b->first,
         b->last, b->lo, b->hi, why ? "; not an in-place takeover: " : "", why ? why : "");
}

/* Step t's operands in storage rb are all written, those in rd all read, and
 * there is at least one of each. */
static const char *handover_step(const ir_program *prog, const int *root, int t, int rd, int rb) {
    const ir_step *s = &prog->steps[t];
    bool wrote = false, read = false;
    for (int k = 0; k < s->nopnd && k < IR_MAX_OPND; k++) {
        int b = s->opnd[k].buf;
        if (s->opnd[k].kind != OPND_BUF || b < 0 || b >= prog->nbufs)
            continue;
        if (root[b] == rb) {
            if (!s->opnd[k].writes)
                return "the handover step reads the taker";
            wrote = true;
        } else if (root[b] == rd) {
            if (s->opnd[k].writes)
                return "the handover step writes the donor";
            read = true;
        }
    }
    return wrote && read ? NULL : "the handover step does not both read the donor and write the taker";
}

/* Decide every in-place takeover (see the top comment); taker_of[rd] = rb for
 * the accepted ones. */
static void find_takeovers(val_ctx *v, const int *root, const int *first, const int *last, const int64_t *extent,
                           int *taker_of) {
    const ir_program *prog = v->prog;
    int nb = prog->nbufs;
    for (int b = 0; b < nb; b++) {
        v->donor[b] = taker_of[b] = -1;
        v->refused[b] = NULL;
    }
    bool *took = xmalloc(sizeof(bool) * (size_t)(nb + 1));
    memset(took, 0, sizeof(bool) * (size_t)(nb + 1));
    for (int b = 0; b < nb; b++) {
        int d = prog->bufs[b].inplace_of;
        if (d < 0)
            continue;
        if (d >= nb) {
            fail(v, "buffer %d '%s' may take over nonexistent buffer %d", b, buf_name(prog, b), d);
            continue;
        }
        int rb = root[b], rd = root[d];
        const ir_buf *tb = &prog->bufs[rb], *db = &prog->bufs[rd];
        if (tb->space != SPACE_ARENA || db->space != SPACE_ARENA || first[rb] < 0 || first[rd] < 0 || rb == rd)
            continue; /* occupies no shared bytes: nothing to exempt */
        if (v->donor[rb] < 0)
            v->donor[rb] = rd;
        else if (v->donor[rb] != rd || taker_of[rd] == rb)
            continue; /* another donor, or this pair decided already */
        const char *why = NULL;
        if (tb->offset != db->offset)
            why = "different offsets";
        else if (extent[rb] != extent[rd] || extent[rb] == 0)
            why = "different sizes";
        else if (last[rd] != first[rb])
            why = "the donor is used after the taker's first step, or dead before it";
        else if ((why = handover_step(prog, root, first[rb], rd, rb)) != NULL)
            ;
        else if (taker_of[rd] >= 0)
            why = "the donor was handed over already";
        else if (took[rb])
            why = "the taker took over another storage already";
        v->refused[rb] = why;
        if (!why) {
            taker_of[rd] = rb;
            took[rb] = true;
        }
    }
    free(took);
}

static void check_overlaps(val_ctx *v, const val_store *st, int n, int nsteps) {
    /* Bucket storages by first and by last step (counting sort). */
    int *by_first = xmalloc(sizeof(int) * (size_t)(n + 1));
    int *by_last = xmalloc(sizeof(int) * (size_t)(n + 1));
    int *cf = xmalloc(sizeof(int) * (size_t)(nsteps + 2));
    int *cl = xmalloc(sizeof(int) * (size_t)(nsteps + 2));
    memset(cf, 0, sizeof(int) * (size_t)(nsteps + 2));
    memset(cl, 0, sizeof(int) * (size_t)(nsteps + 2));
    for (int i = 0; i < n; i++) {
        cf[st[i].first + 1]++;
        cl[st[i].sweep_last + 1]++;
    }
    for (int t = 0; t <= nsteps; t++) {
        cf[t + 1] += cf[t];
        cl[t + 1] += cl[t];
    }
    for (int i = 0; i < n; i++) {
        by_first[cf[st[i].first]++] = i;
        by_last[cl[st[i].sweep_last]++] = i;
    }
    /* cf[t] is now the end of bucket t, i.e. the start of bucket t + 1. */

    const val_store **live = xmalloc(sizeof *live * (size_t)(n + 1));
    bool *in_live = xmalloc(sizeof(bool) * (size_t)(n + 1));
    memset(in_live, 0, sizeof(bool) * (size_t)(n + 1));
    int nlive = 0, fi = 0, li = 0;
    for (int t = 0; t < nsteps; t++) {
        /* Retire what ended before t. */
        for (; li < n && st[by_last[li]].sweep_last < t; li++) {
            int i = by_last[li];
            if (!in_live[i])
                continue;
            int k = upper(live, nlive, st[i].lo) - 1;
            while (k >= 0 && live[k] != &st[i])
                k--;
            IR_ASSERT(k >= 0);
            memmove(live + k, live + k + 1, sizeof *live * (size_t)(nlive - k - 1));
            nlive--;
            in_live[i] = false;
        }
        /* Admit what starts at t, each checked against its neighbours. */
        for (; fi < n && st[by_first[fi]].first == t; fi++) {
            int i = by_first[fi];
            const val_store *s = &st[i];
            if (s->hi <= s->lo)
                continue; /* empty: occupies nothing */
            int k = upper(live, nlive, s->lo);
            const val_store *clash = NULL;
            if (k > 0 && live[k - 1]->hi > s->lo)
                clash = live[k - 1];
            else if (k < nlive && live[k]->lo < s->hi)
                clash = live[k];
            if (clash) {
                report_overlap(v, clash, s);
                continue; /* left out, so the live set stays overlap-free */
            }
            memmove(live + k + 1, live + k, sizeof *live * (size_t)(nlive - k));
            live[k] = s;
            nlive++;
            in_live[i] = true;
        }
    }
    free(live);
    free(in_live);
    free(by_first);
    free(by_last);
    free(cf);
    free(cl);
}

bool pass_validate(const ir_program *prog, FILE *out) {
    val_ctx v = {.prog = prog, .out = out, .ok = true};
    int nb = prog->nbufs, nsteps = prog->nsteps;
    if (prog->nfwd < 0 || prog->nfwd > nsteps)
        fail(&v, "nfwd = %d is outside [0, %d]", prog->nfwd, nsteps);
    int *root = alias_roots(&v);
    int *first = xmalloc(sizeof(int) * (size_t)(nb + 1));
    int *last = xmalloc(sizeof(int) * (size_t)(nb + 1));
    for (int b = 0; b < nb; b++) {
        first[b] = last[b] = -1;
    }

    for (int t = 0; t < nsteps; t++) {
        const ir_step *s = &prog->steps[t];
        if (s->nopnd < 0 || s->nopnd > IR_MAX_OPND) {
            fail(&v, "step %d (%s) has %d operands", t, s->kernel ? s->kernel : "?", s->nopnd);
            continue;
        }
        for (int k = 0; k < s->nopnd; k++) {
            if (s->opnd[k].kind != OPND_BUF)
                continue;
            int b = s->opnd[k].buf;
            if (b < 0 || b >= nb) {
                fail(&v, "step %d (%s) operand %d names buffer %d; there are %d", t, s->kernel ? s->kernel : "?", k, b,
                     nb);
                continue;
            }
            ir_space sp = prog->bufs[b].space, rsp = prog->bufs[root[b]].space;
            if (t >= prog->nfwd &&
                (sp == SPACE_INPUT || sp == SPACE_OUTPUT || rsp == SPACE_INPUT || rsp == SPACE_OUTPUT))
                fail(&v, "backward step %d (%s) uses caller buffer '%s', which backward cannot reach", t,
                     s->kernel ? s->kernel : "?", buf_name(prog, b));
            int r = root[b];
            if (first[r] < 0)
                first[r] = t;
            last[r] = t;
        }
    }

    /* The state word (state.c) is touched by the entry points, not by steps:
     * it is live throughout, at offset 0. */
    for (int b = 0; b < nb; b++) {
        if (prog->bufs[b].kind != BUF_STATE || nsteps == 0)
            continue;
        first[root[b]] = 0, last[root[b]] = nsteps - 1;
        if (prog->bufs[b].offset != 0)
            fail(&v, "the arena state word is at offset %" PRId64 ", not 0", prog->bufs[b].offset);
    }

    /* (1) placement of every referenced arena buffer. A storage's extent is
     * its largest member. */
    int64_t *extent = xmalloc(sizeof(int64_t) * (size_t)(nb + 1));
    for (int b = 0; b < nb; b++)
        extent[b] = 0;
    for (int b = 0; b < nb; b++) {
        const ir_buf *x = &prog->bufs[b];
        if (x->space != SPACE_ARENA || first[root[b]] < 0)
            continue;
        const ir_buf *rx = &prog->bufs[root[b]];
        if (rx->space != SPACE_ARENA) {
            fail(&v, "arena buffer '%s' aliases '%s', which is not in the arena", buf_name(prog, b),
                 buf_name(prog, root[b]));
            continue;
        }
        if (x->bytes < 0 || x->offset < 0 || x->offset % IR_ALIGN != 0 || x->offset > prog->arena_bytes ||
            x->bytes > prog->arena_bytes - x->offset) {
            fail(&v,
                 "arena buffer '%s' at offset %" PRId64 " with %" PRId64 " bytes is misplaced (arena %" PRId64
                 " bytes, alignment %d)",
                 buf_name(prog, b), x->offset, x->bytes, prog->arena_bytes, IR_ALIGN);
            continue;
        }
        if (x->offset != rx->offset) {
            fail(&v, "'%s' aliases '%s' but is at offset %" PRId64 ", not %" PRId64, buf_name(prog, b),
                 buf_name(prog, root[b]), x->offset, rx->offset);
            continue;
        }
        if (x->bytes > extent[root[b]])
            extent[root[b]] = x->bytes;
    }

    /* (2) live storages must not overlap in memory, but for in-place takeovers. */
    v.donor = xmalloc(sizeof(int) * (size_t)(nb + 1));
    v.refused = xmalloc(sizeof(const char *) * (size_t)(nb + 1));
    int *taker_of = xmalloc(sizeof(int) * (size_t)(nb + 1));
    find_takeovers(&v, root, first, last, extent, taker_of);
    val_store *st = xmalloc(sizeof *st * (size_t)(nb + 1));
    int n = 0;
    for (int b = 0; b < nb; b++) {
        const ir_buf *x = &prog->bufs[b];
        if (root[b] != b || x->space != SPACE_ARENA || first[b] < 0 || x->offset < 0)
            continue;
        /* A donor leaves the sweep just before its taker enters (same bytes). */
        int sweep_last = taker_of[b] >= 0 ? last[b] - 1 : last[b];
        if (sweep_last < first[b])
            continue; /* used only at its handover step: its taker stands for it there */
        st[n++] = (val_store){.lo = x->offset,
                              .hi = x->offset + extent[b],
                              .first = first[b],
                              .last = last[b],
                              .buf = b,
                              .sweep_last = sweep_last};
    }
    if (n > 0)
        check_overlaps(&v, st, n, nsteps);

    if (v.reports > VAL_MAX_REPORTS && out)
        fprintf(out, "validate: %d more problems not shown\n", v.reports - VAL_MAX_REPORTS);
    free(st);
    free(taker_of);
    free(v.donor);
    free(v.refused);
    free(extent);
    free(first);
    free(last);
    free(root);
    return v.ok;
}
