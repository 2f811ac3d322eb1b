/* Selective autodiff and residual selection: for each freeze configuration of
 * a small MLP, exactly the right backward kernels exist and exactly the right
 * tensors, in the right form, live from forward into backward. */
#include "ir.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char mlp_src[] =
    "model mlp\n"
    "const N = 8\n"
    "input x : f32[N, 20]\n"
    "input label : i32[N]\n"
    "fc1 = linear(x, 16)\n"
    "h1 = relu(fc1)\n"
    "fc2 = linear(h1, 4)\n"
    "loss = cross_entropy(fc2, label)\n"
    "output loss\n"
    "config all { train * }\n"
    "config head { train fc2.* }\n"
    "config input { train none; grad x }\n"
    "config first { train fc1.* }\n"
    "config bitfit { train *.bias }\n"
    "default head\n";

typedef struct {
    pool *p;
    ir_module *m;
    char *msgs;
    size_t msgs_len;
} built;

static built build(const char *src, const char *config) {
    built b = {.p = pool_new()};
    FILE *out = open_memstream(&b.msgs, &b.msgs_len);
    diag_ctx d;
    diag_init(&d, "test.frost", src, strlen(src), out);
    frost_select sel = {.config = config};
    b.m = frost_build(b.p, &d, NULL, 0, &sel);
    fclose(out);
    return b;
}

static void release(built *b) {
    pool_free(b->p);
    free(b->msgs);
}

static int count_kernel(const ir_program *prog, const char *kernel, bool backward) {
    int count = 0;
    for (int s = backward ? prog->nfwd : 0; s < (backward ? prog->nsteps : prog->nfwd); s++)
        count += strcmp(prog->steps[s].kernel, kernel) == 0;
    return count;
}

/* Buffer named `name`, or -1. */
static int find_buf(const ir_program *prog, const char *name) {
    for (int b = 0; b < prog->nbufs; b++)
        if (strcmp(prog->bufs[b].name, name) == 0)
            return b;
    return -1;
}

static bool is_residual(const ir_program *prog, const char *name) {
    int b = find_buf(prog, name);
    if (b < 0)
        return false;
    const ir_buf *buf = &prog->bufs[b];
    while (buf->alias_of >= 0)
        buf = &prog->bufs[buf->alias_of];
    return buf->space == SPACE_ARENA && buf->first >= 0 && buf->first < prog->nfwd && buf->last >= prog->nfwd;
}

/* Sum of aligned bytes of the root arena buffers that cross into backward. */
static int64_t residual_bytes(const ir_program *prog) {
    int64_t total = 0;
    for (int b = 0; b < prog->nbufs; b++) {
        const ir_buf *buf = &prog->bufs[b];
        if (buf->alias_of < 0 && buf->space == SPACE_ARENA && buf->first >= 0 && buf->first < prog->nfwd &&
            buf->last >= prog->nfwd)
            total += ir_align_up(buf->bytes);
    }
    return total;
}

START_TEST(all_trainable_keeps_inputs_of_every_layer) {
    built b = build(mlp_src, "all");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 2);
    ck_assert_int_eq(count_kernel(t, "rt_sum_rows", true), 2);
    /* fc1's input x is not needed: nothing upstream of fc1 wants a gradient */
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 1);
    ck_assert(is_residual(t, "copy x"));   /* for d fc1.weight, copied: backward has no inputs */
    ck_assert(is_residual(t, "h1"));       /* for d fc2.weight, kept in full ... */
    ck_assert_int_eq(find_buf(t, "mask h1"), -1); /* ... so relu needs no mask */
    ck_assert_int_eq(count_kernel(t, "rt_relu_bwd_out", true), 1);
    ck_assert(is_residual(t, "aux0 loss")); /* the softmax */
    ck_assert(is_residual(t, "copy label"));
    ck_assert(!is_residual(t, "fc1"));
    ck_assert(!is_residual(t, "fc2"));
    /* grads: every param, aligned */
    ck_assert_int_eq(b.m->grads_bytes, ir_align_up(16 * 20 * 4) + ir_align_up(16 * 4) + ir_align_up(4 * 16 * 4) +
                                           ir_align_up(4 * 4));
    ck_assert_int_eq(t->residual_bytes, residual_bytes(t));
    ck_assert_int_eq(t->residual_bytes, ir_align_up(8 * 20 * 4) + ir_align_up(8 * 16 * 4) + ir_align_up(8 * 4 * 4) +
                                            ir_align_up(8 * 4) + IR_ARENA_STATE_BYTES);
    release(&b);
}
END_TEST

START_TEST(head_only_frees_the_backbone) {
    built b = build(mlp_src, NULL); /* default: head */
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 1);
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 0);
    ck_assert_int_eq(count_kernel(t, "rt_relu_bwd_out", true) + count_kernel(t, "rt_relu_bwd_mask", true), 0);
    ck_assert_int_eq(find_buf(t, "copy x"), -1);
    ck_assert(is_residual(t, "h1"));
    ck_assert_int_eq(find_buf(t, "mask h1"), -1);
    ck_assert_int_eq(b.m->grads_bytes, ir_align_up(4 * 16 * 4) + ir_align_up(4 * 4));
    ck_assert_int_eq(b.m->grad_offset[ir_find_value(b.m->graph, "fc1.weight")], -1);
    ck_assert_int_eq(b.m->grad_offset[ir_find_value(b.m->graph, "fc2.weight")], 0);
    release(&b);
}
END_TEST

START_TEST(input_only_keeps_a_one_bit_mask) {
    built b = build(mlp_src, "input");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 0);
    ck_assert_int_eq(count_kernel(t, "rt_sum_rows", true), 0);
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 2);
    ck_assert_int_eq(count_kernel(t, "rt_sign_mask", false), 1);
    ck_assert_int_eq(count_kernel(t, "rt_relu_bwd_mask", true), 1);
    ck_assert(is_residual(t, "mask h1"));
    ck_assert(!is_residual(t, "h1"));
    ck_assert_int_eq(find_buf(t, "copy x"), -1);
    int mask = find_buf(t, "mask h1");
    ck_assert_int_eq(t->bufs[mask].bytes, 8 * 16 / 8);
    /* only d x in the grads block */
    ck_assert_int_eq(b.m->grads_bytes, ir_align_up(8 * 20 * 4));
    ck_assert_int_eq(b.m->grad_offset[ir_find_value(b.m->graph, "x")], 0);
    ck_assert_int_eq(t->residual_bytes,
                     ir_align_up(16) + ir_align_up(8 * 4 * 4) + ir_align_up(8 * 4) + IR_ARENA_STATE_BYTES);
    release(&b);
}
END_TEST

START_TEST(first_layer_only) {
    built b = build(mlp_src, "first");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_w", true), 1);
    ck_assert_int_eq(count_kernel(t, "rt_linear_bwd_x", true), 1); /* through fc2, with its frozen weight */
    ck_assert(is_residual(t, "copy x"));
    ck_assert(is_residual(t, "mask h1"));
    ck_assert(!is_residual(t, "h1"));
    release(&b);
}
END_TEST

START_TEST(frozen_everything_has_an_empty_backward) {
    built b = build(mlp_src, "none");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    ck_assert_int_eq(t->nsteps, t->nfwd);
    ck_assert_int_eq(t->residual_bytes, IR_ARENA_STATE_BYTES); /* only the state word */
    ck_assert_int_eq(b.m->grads_bytes, 0);
    release(&b);
}
END_TEST

START_TEST(infer_keeps_nothing_and_reuses_memory) {
    built b = build(mlp_src, "all");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *inf = &b.m->infer;
    ck_assert_int_eq(inf->nsteps, inf->nfwd);
    ck_assert_int_eq(inf->residual_bytes, 0);
    ck_assert_int_eq(count_kernel(inf, "rt_sign_mask", false), 0);
    ck_assert(inf->arena_bytes <= b.m->train.arena_bytes);
    ck_assert(inf->arena_bytes >= inf->lower_bound);
    release(&b);
}
END_TEST

START_TEST(gradient_passes_through_views_and_adds) {
    static const char src[] = "model v\n"
                              "input x : f32[4, 2, 3] grad\n"
                              "input t : f32[4, 6]\n"
                              "f = flatten(x)\n"
                              "a = add(f, f)\n"
                              "loss = mse_loss(a, t)\n"
                              "output loss\n";
    built b = build(src, "none");
    ck_assert_ptr_nonnull(b.m);
    const ir_program *t = &b.m->train;
    /* flatten is a view: no kernel, its buffer aliases x */
    int f = find_buf(t, "f");
    ck_assert_int_ge(f, 0);
    ck_assert_int_ge(t->bufs[f].alias_of, 0);
    /* add(f, f): both contributions to d f, so no in-place pass-through */
    ck_assert_int_eq(count_kernel(t, "rt_acc_f32", true) + count_kernel(t, "rt_sum_rows", true), 3);
    ck_assert(is_residual(t, "aux0 loss"));
    release(&b);
}
END_TEST

START_TEST(pattern_matching_nothing_is_an_error) {
    static const char src[] = "model m\n"
                              "input x : f32[2, 3]\n"
                              "input y : f32[2, 4]\n"
                              "h = linear(x, 4)\n"
                              "loss = mse_loss(h, y)\n"
                              "output loss\n"
                              "config c { train hh.* }\n";
    built b = build(src, "c");
    ck_assert_ptr_null(b.m);
    ck_assert_ptr_nonnull(strstr(b.msgs, "test.frost:7:18: error: pattern 'hh.*' in config 'c' matches no parameter"));
    release(&b);
}
END_TEST

START_TEST(glob_patterns) {
    ck_assert(glob_match("*", "fc1.weight"));
    ck_assert(glob_match("fc2.*", "fc2.bias"));
    ck_assert(!glob_match("fc2.*", "fc1.bias"));
    ck_assert(glob_match("*.bias", "layer1.0.bn1.bias"));
    ck_assert(glob_match("fc?.weight", "fc1.weight"));
    ck_assert(glob_match("layer[12].*", "layer2.0.conv1.weight"));
    ck_assert(!glob_match("layer[!12].*", "layer2.0.conv1.weight"));
    ck_assert(glob_match("layer[1-3].*", "layer3.x"));
    ck_assert(!glob_match("fc1", "fc1.weight"));
    ck_assert(glob_match("**x", "x"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("lower");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, all_trainable_keeps_inputs_of_every_layer);
    tcase_add_test(tc, head_only_frees_the_backbone);
    tcase_add_test(tc, input_only_keeps_a_one_bit_mask);
    tcase_add_test(tc, first_layer_only);
    tcase_add_test(tc, frozen_everything_has_an_empty_backward);
    tcase_add_test(tc, infer_keeps_nothing_and_reuses_memory);
    tcase_add_test(tc, gradient_passes_through_views_and_adds);
    tcase_add_test(tc, pattern_matching_nothing_is_an_error);
    tcase_add_test(tc, glob_patterns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
