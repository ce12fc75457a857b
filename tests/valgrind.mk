# make valgrind: the test suite under valgrind's memcheck (included by the
# Makefile). Tests run with CNNVIZ_QUICK=1, which the slow ones honour:
# test_oom tries every k-th allocation of the large models only (at most
# ~150 failure points per model) and test_models skips the benchmark
# models. Logs: $(BUILD)/valgrind/<test>.log. Definite and indirect leaks
# and every memory error fail the run; libhdf5's and cmocka's
# still-reachable blocks at exit do not.

VALGRIND       ?= valgrind
VALGRIND_FLAGS ?= --error-exitcode=1 --leak-check=full \
                  --errors-for-leak-kinds=definite,indirect \
                  --show-leak-kinds=definite,indirect --num-callers=30

.PHONY: valgrind
valgrind: all $(TESTS)
	@mkdir -p $(BUILD)/valgrind; fail=0; start=$$(date +%s); \
	for t in $(TESTS); do \
	  n=$$(basename $$t); t0=$$(date +%s); \
	  CNNVIZ_QUICK=1 CNNVIZ_TOOL=$(BUILD)/cnnviz-dump \
	    $(VALGRIND) $(VALGRIND_FLAGS) --log-file=$(BUILD)/valgrind/$$n.log \
	    $$t > $(BUILD)/valgrind/$$n.out 2>&1; rc=$$?; \
	  echo "== $$n: exit $$rc, $$(( $$(date +%s) - t0 )) s, \
	$$(grep -E 'ERROR SUMMARY' $(BUILD)/valgrind/$$n.log | sed 's/==[0-9]*== //')"; \
	  if [ $$rc -ne 0 ]; then fail=1; tail -5 $(BUILD)/valgrind/$$n.out; fi; \
	done; \
	echo "valgrind: $$(( $$(date +%s) - start )) s in all"; \
	if [ $$fail -ne 0 ]; then echo "VALGRIND FOUND PROBLEMS (logs in $(BUILD)/valgrind)"; exit 1; fi; \
	echo "VALGRIND CLEAN"
