/* plan.c: static offsets of arena buffers.
 *
 * Input: liveness.c's intervals. Every root of an alias group that is live
 * somewhere is one storage object of size max(ir_align_up(bytes)) over its
 * group, occupying [first, last] in time. Two objects whose intervals overlap
 * must get disjoint byte ranges; that is all (dynamic storage allocation,
 * NP-hard in general, easy in practice for these shapes).
 *
 * Method: greedy placement with best fit (as in TFLite's and XLA's planners and
 * Pisarchyk & Lee 2020, "Efficient Memory Management for Deep Neural Net
 * Inference"): objects are placed one by one in some order; each goes into the
 * smallest gap between already-placed objects that overlap it in time, or on
 * top of them when no gap is big enough. The result depends strongly on the
 * order, so several orders are tried (each placed with best fit and with
 * first fit) and the smallest arena kept:
 *   size desc (three tie-breaks), size x lifetime desc, start time asc,
 *   end time desc, lifetime desc, and "breadth" order (objects ranked by the
 *   heaviest step they are live in, i.e. Pisarchyk & Lee's greedy by breadth).
 * Then, while the work stays bounded, size orders perturbed by deterministic
 * noise (a small randomized search), and a local search that moves single
 * objects within the best order (what small programs, where a few 64-byte
 * objects decide, need). Finally the best plan is compacted:
 * objects re-placed in order of their offsets, each at the lowest fitting
 * offset, which never moves one up (an object's old offset stays feasible),
 * alternately on the plan and on its mirror image. Every step stops as soon
 * as the lower bound is reached. The four phases are greedy_orders,
 * perturbed_orders, local_search and compact; search() runs them in order on
 * one plan_search (best plan so far, one random generator).
 *
 * In place: a buffer with inplace_of (an element-wise op's output, see lower.c)
 * takes over its donor's storage when the donor's storage is last used by the
 * very step that first writes the taker, that step only reads the donor and only
 * writes the taker, both are arena storages of the same size, and the donor has
 * not been taken over already. The taker's object then simply continues the
 * donor's (one object, the union of both intervals, which meet at that step);
 * chains (add -> relu -> ...) become one object. Anything else is left alone:
 * inplace_of is a permission, not an order.
 *
 * Lower bound: the largest sum of object sizes live at one step, after the
 * in-place merges, so an in-place pair counts once at its handover step. No
 * offset assignment can do better for this schedule (with the donor allowed to
 * share its bytes with its taker at that step); arena_bytes / lower_bound is the
 * quality of the plan. Cost: O(n^2) per order in the worst case for n objects,
 * in practice a scan over the objects placed so far.
 *
 * Sizes: every offset, end, load and arena here is at most the sum of the
 * objects' sizes (an object goes into a gap or on top of what it overlaps),
 * which pass_lower has checked to fit in int64 with room for alignment; so
 * plain int64 arithmetic cannot overflow.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t size;  /* aligned group size */
    int64_t bytes; /* the group's largest member, unaligned */
    int first, last;
    int buf; /* root buffer id */
} plan_obj;

/* Objects placed so far, kept sorted by offset (structure of arrays: the scan
 * in place() is the hot loop). */
typedef struct {
    int64_t *off, *end;
    int *first, *last;
    int n;
} plan_placed;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    IR_ASSERT(p);
    return p;
}

static int uf_find(int *parent, int i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* Does step t hand storage rd over to rb: it names both groups, writes rb's and
 * only writes it, reads rd's and only reads it? */
static bool hands_over(const ir_program *prog, const int *root, int t, int rd, int rb) {
    const ir_step *s = &prog->steps[t];
    bool wrote = false, read = false;
    for (int k = 0; k < s->nopnd; k++) {
        if (s->opnd[k].kind != OPND_BUF)
            continue;
        int r = root[s->opnd[k].buf];
        if (r == rb) {
            if (!s->opnd[k].writes)
                return false;
            wrote = true;
        } else if (r == rd) {
            if (s->opnd[k].writes)
                return false;
            read = true;
        }
    }
    return wrote && read;
}

/* In-place takeovers (see the top comment): merge each taker's object into its
 * donor's. Returns the new object count; obj_of is remapped. */
static int merge_inplace(const ir_program *prog, const int *root, int *obj_of, plan_obj *obj, int n) {
    int *parent = xmalloc(sizeof(int) * (size_t)(n + 1));
    bool *taken = xmalloc(sizeof(bool) * (size_t)(n + 1)), *took = xmalloc(sizeof(bool) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        parent[i] = i;
        taken[i] = took[i] = false;
    }
    int merged = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        int d = prog->bufs[b].inplace_of;
        if (d < 0)
            continue;
        IR_ASSERT(d < prog->nbufs);
        int ob = obj_of[root[b]], od = obj_of[root[d]];
        if (ob < 0 || od < 0 || ob == od || took[ob] || taken[od] || obj[ob].bytes != obj[od].bytes ||
            obj[ob].bytes == 0 || obj[ob].first != obj[od].last ||
            !hands_over(prog, root, obj[ob].first, root[d], root[b]))
            continue;
        int rb = uf_find(parent, ob), rd = uf_find(parent, od);
        if (rb == rd)
            continue;
        took[ob] = taken[od] = true;
        parent[rb] = rd;
        merged++;
    }
    if (merged) {
        /* Widen each representative to its set, then compact (new index <= old). */
        for (int i = 0; i < n; i++) {
            plan_obj *r = &obj[uf_find(parent, i)];
            if (obj[i].first < r->first)
                r->first = obj[i].first;
            if (obj[i].last > r->last)
                r->last = obj[i].last;
            if (obj[i].size > r->size)
                r->size = obj[i].size;
        }
        int *idx = xmalloc(sizeof(int) * (size_t)(n + 1));
        int m = 0;
        for (int i = 0; i < n; i++)
            if (uf_find(parent, i) == i) {
                idx[i] = m;
                obj[m++] = obj[i];
            }
        for (int b = 0; b < prog->nbufs; b++)
            if (obj_of[b] >= 0)
                obj_of[b] = idx[uf_find(parent, obj_of[b])];
        free(idx);
        n = m;
    }
    free(parent);
    free(taken);
    free(took);
    return n;
}

/* Place objects in the given order; off[i] receives object i's offset.
 * best_fit: smallest fitting gap (ties: lowest); otherwise lowest fitting
 * offset. Returns the arena size. */
static int64_t place(const plan_obj *obj, int n, const int *order, int64_t *off, plan_placed *pl, bool best_fit) {
    int64_t top = 0;
    pl->n = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        const plan_obj *o = &obj[i];
        if (o->size == 0) {
            off[i] = 0;
            continue;
        }
        int64_t cur = 0, best = -1, best_gap = INT64_MAX;
        for (int j = 0; j < pl->n; j++) {
            if (pl->first[j] > o->last || pl->last[j] < o->first)
                continue;
            if (pl->off[j] >= cur) {
                int64_t gap = pl->off[j] - cur;
                if (gap >= o->size && gap < best_gap) {
                    best = cur;
                    best_gap = gap;
                    if (!best_fit || gap == o->size)
                        break;
                }
            }
            if (pl->end[j] > cur)
                cur = pl->end[j];
        }
        if (best < 0)
            best = cur;
        off[i] = best;
        if (best + o->size > top)
            top = best + o->size;
        /* Insert keeping pl sorted by offset. */
        int lo = 0, hi = pl->n;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (pl->off[mid] <= best)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t tail = (size_t)(pl->n - lo);
        memmove(pl->off + lo + 1, pl->off + lo, tail * sizeof *pl->off);
        memmove(pl->end + lo + 1, pl->end + lo, tail * sizeof *pl->end);
        memmove(pl->first + lo + 1, pl->first + lo, tail * sizeof *pl->first);
        memmove(pl->last + lo + 1, pl->last + lo, tail * sizeof *pl->last);
        pl->off[lo] = best;
        pl->end[lo] = best + o->size;
        pl->first[lo] = o->first;
        pl->last[lo] = o->last;
        pl->n++;
    }
    return top;
}

/* Orders are sorted on up to three int64 keys, descending, then by object
 * index ascending or descending (a deterministic, distinct tie-break). */
typedef struct {
    int64_t k[3];
    int idx, tie; /* tie: +idx or -idx */
} plan_key;

static int cmp_key(const void *pa, const void *pb) {
    const plan_key *a = pa, *b = pb;
    for (int i = 0; i < 3; i++)
        if (a->k[i] != b->k[i])
            return a->k[i] > b->k[i] ? -1 : 1;
    return (a->tie > b->tie) - (a->tie < b->tie);
}

enum {
    ORD_SIZE_FIRST, /* size desc, start asc */
    ORD_SIZE_LONG,  /* size desc, lifetime desc */
    ORD_SIZE_REV,   /* size desc, index desc */
    ORD_AREA,       /* size x lifetime desc */
    ORD_START,      /* start asc, size desc */
    ORD_END,        /* end desc, size desc */
    ORD_LONGEST,    /* lifetime desc, size desc */
    ORD_BREADTH,    /* heaviest step live in desc, that step asc, size desc */
    ORD_COUNT
};

#define PLAN_COMPACT_ROUNDS 16
#define PLAN_SEARCH_MAX 64     /* perturbed orders tried at most */
#define PLAN_SEARCH_WORK 1.5e8 /* ... and at most this many pair visits */
#define PLAN_LOCAL_MAX 20000   /* local-search moves tried at most */
#define PLAN_LOCAL_WORK 5e7    /* ... and at most this many pair visits */

static int64_t sat_mul(int64_t a, int64_t b) { return b != 0 && a > INT64_MAX / b ? INT64_MAX : a * b; }

/* The keys of greedy order `which` (ORD_*) for every object. */
static void order_keys(int which, const plan_obj *obj, int n, const int64_t *peak, const int *peak_at, plan_key *keys) {
    for (int i = 0; i < n; i++) {
        const plan_obj *o = &obj[i];
        int64_t life = o->last - o->first + 1;
        plan_key *k = &keys[i];
        k->idx = i;
        k->tie = i;
        k->k[0] = k->k[1] = k->k[2] = 0;
        switch (which) {
        case ORD_SIZE_FIRST:
            k->k[0] = o->size;
            k->k[1] = -o->first;
            break;
        case ORD_SIZE_LONG:
            k->k[0] = o->size;
            k->k[1] = life;
            k->k[2] = -o->first;
            break;
        case ORD_SIZE_REV:
            k->k[0] = o->size;
            k->k[1] = o->last;
            k->tie = -i;
            break;
        case ORD_AREA:
            k->k[0] = sat_mul(o->size, life);
            k->k[1] = o->size;
            break;
        case ORD_START:
            k->k[0] = -o->first;
            k->k[1] = o->size;
            k->k[2] = life;
            break;
        case ORD_END:
            k->k[0] = o->last;
            k->k[1] = o->size;
            k->k[2] = life;
            break;
        case ORD_LONGEST:
            k->k[0] = life;
            k->k[1] = o->size;
            break;
        case ORD_BREADTH:
            k->k[0] = peak[i];
            k->k[1] = -peak_at[i];
            k->k[2] = o->size;
            break;
        default: IR_ASSERT(0);
        }
    }
}

/* For each object, the heaviest step it is live at (load, then earliest
 * step): a sparse table over the per-step load answers each range in O(1). */
static void breadth_peaks(const plan_obj *obj, int n, const int64_t *load, int nsteps, int64_t *peak, int *peak_at) {
    int levels = 1;
    while ((1 << levels) <= nsteps)
        levels++;
    int *tab = xmalloc(sizeof(int) * (size_t)levels * (size_t)nsteps);
    for (int t = 0; t < nsteps; t++)
        tab[t] = t;
    for (int l = 1; l < levels; l++) {
        int *prev = tab + (size_t)(l - 1) * (size_t)nsteps, *cur = tab + (size_t)l * (size_t)nsteps;
        for (int t = 0; t + (1 << l) <= nsteps; t++) {
            int a = prev[t], b = prev[t + (1 << (l - 1))];
            cur[t] = load[b] > load[a] ? b : a; /* a < b: equal loads keep the earlier */
        }
    }
    for (int i = 0; i < n; i++) {
        int lo = obj[i].first, hi = obj[i].last, l = 0;
        while ((2 << l) <= hi - lo + 1)
            l++;
        int a = tab[(size_t)l * (size_t)nsteps + (size_t)lo];
        int b = tab[(size_t)l * (size_t)nsteps + (size_t)(hi - (1 << l) + 1)];
        int best = load[b] > load[a] || (load[b] == load[a] && b < a) ? b : a;
        peak[i] = load[best];
        peak_at[i] = best;
    }
    free(tab);
}

/* ---------------------------------------------------------------- search
 *
 * The phases below share one search state: the objects, the order being
 * tried, the best plan so far, one deterministic random generator. Each
 * places orders with place() and hands the result to keep_if_better(); each
 * stops as soon as the best plan reaches the lower bound. */
typedef struct {
    const plan_obj *obj;
    int n;
    int64_t bound;  /* the lower bound: no plan can be smaller */
    int *order;     /* the order being tried */
    int64_t *off;   /* the offsets place() gives it */
    plan_placed pl; /* place()'s working set */
    plan_key *keys;
    int64_t best;      /* the smallest arena so far (INT64_MAX: none yet) */
    int64_t *best_off; /* its offsets */
    int *best_order;   /* and its order */
    uint64_t rs;       /* the random generator's state */
} plan_search;

static bool at_bound(const plan_search *s) { return s->best <= s->bound; }

/* A 64-bit LCG (Knuth's MMIX constants): fixed seed, so the planner is
 * deterministic. */
static uint64_t next_random(plan_search *s) {
    s->rs = s->rs * 6364136223846793005ull + 1442695040888963407ull;
    return s->rs;
}

/* s->order := the objects sorted by s->keys. */
static void sort_order(plan_search *s) {
    qsort(s->keys, (size_t)s->n, sizeof *s->keys, cmp_key);
    for (int i = 0; i < s->n; i++)
        s->order[i] = s->keys[i].idx;
}

/* The plan just placed (s->order, s->off, arena a) becomes the best when it
 * is smaller, or, with ties, when it is no larger. */
static void keep_if_better(plan_search *s, int64_t a, bool ties) {
    if (a < s->best || (ties && a == s->best)) {
        s->best = a;
        memcpy(s->best_off, s->off, sizeof(int64_t) * (size_t)s->n);
        memcpy(s->best_order, s->order, sizeof(int) * (size_t)s->n);
    }
}

/* Place s->order with best fit or first fit, keep it if it is better; its arena. */
static int64_t try_order(plan_search *s, bool best_fit) {
    int64_t a = place(s->obj, s->n, s->order, s->off, &s->pl, best_fit);
    keep_if_better(s, a, false);
    return a;
}

/* The greedy orders (ORD_*), each placed with best fit, then first fit. */
static void greedy_orders(plan_search *s, const int64_t *peak, const int *peak_at) {
    for (int w = 0; w < ORD_COUNT && !at_bound(s); w++) {
        order_keys(w, s->obj, s->n, peak, peak_at, s->keys);
        sort_order(s);
        for (int fit = 1; fit >= 0 && !at_bound(s); fit--)
            try_order(s, fit);
    }
}

/* Perturbed orders: size desc with deterministic multiplicative noise of
 * varying strength, placed with best fit. Cheap insurance against an
 * unlucky tie structure; bounded by PLAN_SEARCH_WORK pair visits in total. */
static void perturbed_orders(plan_search *s) {
    static const double noise[] = {0.05, 0.2, 0.5, 1.0};
    const plan_obj *obj = s->obj;
    int n = s->n;
    double pairs = (double)n * (double)n / 2;
    int iters = pairs > 0 ? (int)(PLAN_SEARCH_WORK / pairs) : 0;
    if (iters > PLAN_SEARCH_MAX)
        iters = PLAN_SEARCH_MAX;
    for (int it = 0; it < iters && !at_bound(s); it++) {
        double amp = noise[it % 4];
        for (int i = 0; i < n; i++) {
            double u = (double)(next_random(s) >> 11) * 0x1.0p-53;
            plan_key *k = &s->keys[i];
            k->idx = k->tie = i;
            k->k[0] = obj[i].size < ((int64_t)1 << 60) ? (int64_t)((double)obj[i].size * (1.0 + amp * u)) : obj[i].size;
            k->k[1] = obj[i].size;
            k->k[2] = 0;
        }
        sort_order(s);
        try_order(s, true);
    }
}

/* Local search over orders, from the best one: move one object of the
 * current order to another position, place with best fit and with first
 * fit, keep the move when neither is worse (plateaus are how it gets
 * anywhere). Small programs, whose few objects leave the greedy orders
 * little room, get thousands of moves; large ones few or none (bounded by
 * PLAN_LOCAL_WORK pair visits). */
static void local_search(plan_search *s) {
    int n = s->n;
    double per_move = (double)n * (double)n;
    int moves = per_move > 0 ? (int)(PLAN_LOCAL_WORK / per_move) : 0;
    if (moves > PLAN_LOCAL_MAX)
        moves = PLAN_LOCAL_MAX;
    if (n <= 1 || moves <= 0 || at_bound(s))
        return;
    int *cur = xmalloc(sizeof(int) * (size_t)n);
    memcpy(cur, s->best_order, sizeof(int) * (size_t)n);
    int64_t cur_a = s->best;
    for (int it = 0; it < moves && !at_bound(s); it++) {
        uint64_t r = next_random(s);
        int from = (int)((r >> 33) % (uint64_t)n), to = (int)((r >> 13) % (uint64_t)n);
        int *order = s->order;
        memcpy(order, cur, sizeof(int) * (size_t)n);
        int moved = order[from];
        if (from < to)
            memmove(order + from, order + from + 1, sizeof(int) * (size_t)(to - from));
        else
            memmove(order + to + 1, order + to, sizeof(int) * (size_t)(from - to));
        order[to] = moved;
        int64_t lo = INT64_MAX;
        for (int fit = 1; fit >= 0; fit--) {
            int64_t a = try_order(s, fit);
            if (a < lo)
                lo = a;
        }
        if (lo <= cur_a) {
            cur_a = lo;
            memcpy(cur, order, sizeof(int) * (size_t)n);
        }
    }
    free(cur);
}

/* Compaction of the best plan: re-place in order of offset, each at the
 * lowest fit; an object's old offset stays feasible, so nothing moves up and
 * the arena never grows. The plan is mirrored (offset -> arena - offset -
 * size, equally valid) before each round so that objects settle alternately
 * down and up, which closes gaps one direction alone cannot. Stops when a
 * round trip (down and up) gains nothing. */
static void compact(plan_search *s) {
    const plan_obj *obj = s->obj;
    for (int round = 0, still = 0; round < PLAN_COMPACT_ROUNDS && still < 2 && !at_bound(s); round++) {
        for (int i = 0; i < s->n; i++) {
            int64_t m = obj[i].size ? s->best - s->best_off[i] - obj[i].size : 0;
            plan_key *k = &s->keys[i];
            k->idx = k->tie = i;
            k->k[0] = -m;
            k->k[1] = obj[i].size;
            k->k[2] = 0;
            s->best_off[i] = m;
        }
        sort_order(s);
        int64_t a = place(obj, s->n, s->order, s->off, &s->pl, false);
        IR_ASSERT(a <= s->best);
        still = a == s->best ? still + 1 : 0;
        keep_if_better(s, a, true);
    }
}

/* The smallest arena the phases find for n > 0 objects; off receives the
 * objects' offsets. */
static int64_t search(const plan_obj *obj, int n, const int64_t *load, int nsteps, int64_t bound, int64_t *off) {
    plan_search s = {
        .obj = obj,
        .n = n,
        .bound = bound,
        .order = xmalloc(sizeof(int) * (size_t)n),
        .off = xmalloc(sizeof(int64_t) * (size_t)n),
        .pl =
            {
                .off = xmalloc(sizeof(int64_t) * (size_t)n),
                .end = xmalloc(sizeof(int64_t) * (size_t)n),
                .first = xmalloc(sizeof(int) * (size_t)n),
                .last = xmalloc(sizeof(int) * (size_t)n),
            },
        .keys = xmalloc(sizeof(plan_key) * (size_t)n),
        .best = INT64_MAX,
        .best_off = off,
        .best_order = xmalloc(sizeof(int) * (size_t)n),
        .rs = 0x9e3779b97f4a7c15ull,
    };
    int64_t *peak = xmalloc(sizeof(int64_t) * (size_t)n);
    int *peak_at = xmalloc(sizeof(int) * (size_t)n);
    breadth_peaks(obj, n, load, nsteps, peak, peak_at);
    greedy_orders(&s, peak, peak_at);
    perturbed_orders(&s);
    local_search(&s);
    compact(&s);
    free(peak);
    free(peak_at);
    free(s.order);
    free(s.off);
    free(s.pl.off);
    free(s.pl.end);
    free(s.pl.first);
    free(s.pl.last);
    free(s.keys);
    free(s.best_order);
    return s.best;
}

/* ---------------------------------------------------------------- the pass */

/* One object per live arena root, its size the largest member's; in-place
 * takeovers merged. obj_of[b]: the object of root b, -1 for other buffers.
 * Returns the object count. */
static int make_objects(const ir_program *prog, const int *root, int *obj_of, plan_obj *obj) {
    int n = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *x = &prog->bufs[b];
        obj_of[b] = -1;
        if (x->space == SPACE_ARENA && x->alias_of < 0 && x->first >= 0) {
            IR_ASSERT(x->first <= x->last && x->last < prog->nsteps);
            obj_of[b] = n;
            obj[n++] = (plan_obj){.size = 0, .bytes = 0, .first = x->first, .last = x->last, .buf = b};
        }
    }
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *x = &prog->bufs[b];
        if (x->space != SPACE_ARENA)
            continue;
        IR_ASSERT(x->bytes >= 0);
        int o = obj_of[root[b]];
        if (o >= 0 && x->bytes > obj[o].bytes) {
            obj[o].bytes = x->bytes;
            obj[o].size = ir_align_up(x->bytes);
        }
    }
    return merge_inplace(prog, root, obj_of, obj, n);
}

/* Per-step load (load[t]: the sizes of the objects live at step t; nsteps + 1
 * entries), and from it lower_bound and residual_bytes. */
static void step_loads(ir_program *prog, const plan_obj *obj, int n, int64_t *load) {
    memset(load, 0, sizeof(int64_t) * (size_t)(prog->nsteps + 1));
    for (int i = 0; i < n; i++) {
        load[obj[i].first] += obj[i].size;
        load[obj[i].last + 1] -= obj[i].size;
        if (obj[i].first < prog->nfwd && prog->nfwd <= obj[i].last)
            prog->residual_bytes += obj[i].size;
    }
    for (int t = 0; t < prog->nsteps; t++) {
        if (t > 0)
            load[t] += load[t - 1];
        if (load[t] > prog->lower_bound)
            prog->lower_bound = load[t];
    }
}

void pass_plan(ir_program *prog) {
    int nb = prog->nbufs;
    prog->arena_bytes = prog->lower_bound = prog->residual_bytes = 0;
    int *root = xmalloc(sizeof(int) * (size_t)(nb + 1));
    ir_storage_roots(prog, root);
    int *obj_of = xmalloc(sizeof(int) * (size_t)(nb + 1));
    plan_obj *obj = xmalloc(sizeof *obj * (size_t)(nb + 1));
    int n = make_objects(prog, root, obj_of, obj);
    /* the lower bound, and the key of the breadth order */
    int64_t *load = xmalloc(sizeof(int64_t) * (size_t)(prog->nsteps + 1));
    step_loads(prog, obj, n, load);
    int64_t *off = xmalloc(sizeof(int64_t) * (size_t)(n + 1));
    if (n > 0)
        prog->arena_bytes = ir_align_up(search(obj, n, load, prog->nsteps, prog->lower_bound, off));
    for (int b = 0; b < nb; b++) {
        ir_buf *x = &prog->bufs[b];
        if (x->space != SPACE_ARENA)
            continue;
        int o = obj_of[root[b]];
        x->offset = o >= 0 ? off[o] : -1;
    }
    free(load);
    free(off);
    free(obj);
    free(obj_of);
    free(root);
}
