#!/usr/bin/env bash
# run_poison.sh: compile a model with frost, build poison.c against the
# generated header and object, and run it: backward must give bit-identical
# gradients after every arena byte outside the header's kept ranges, the grads
# block and the inputs were poisoned between forward and backward.
#
#   run_poison.sh FROST MODEL (CONFIG | FROST-OPTIONS...) WORKDIR
#
# Arguments, environment and exit status as for run_gradcheck.sh, which does
# the work.
FROST_DRIVER=poison exec bash "$(dirname "${BASH_SOURCE[0]}")/run_gradcheck.sh" "$@"
